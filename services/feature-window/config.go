package main

import (
	"fmt"
	"os"
	"time"

	"github.com/vigil-fraud/vigil/libs/config"
	"github.com/vigil-fraud/vigil/libs/httpserver"
	"github.com/vigil-fraud/vigil/libs/kafka"
	"github.com/vigil-fraud/vigil/libs/redisclient"
	"github.com/vigil-fraud/vigil/libs/telemetry"
	"github.com/vigil-fraud/vigil/models/features"
)

// Config of the feature-window service, from VIGIL_FEATURE_WINDOW_* and the shared variables.
type Config struct {
	Addr string
	// DebugAddr, when set (loopback only), serves /debug/pprof.
	DebugAddr       string
	Group           string
	LabelsGroup     string
	TransactionalID string
	MaxPollRecords  int
	// Fetch shapes the tx.v1 consumer's fetches (kafka.Fetch).
	Fetch kafka.Fetch
	// CommitInterval keeps a Kafka transaction open across polls up to this age (0: one per poll).
	CommitInterval time.Duration
	// InstanceID, when set, makes the tx.v1 consumer a static group member: a restarted
	// process with the same id gets its partitions back at once instead of after the session
	// timeout.
	InstanceID     string
	SessionTimeout time.Duration
	// CatchUpTimeout bounds reading tx.v1 to catch a partition's windows up after a crash or a
	// lost Redis; the transaction aborts and retries after it.
	CatchUpTimeout time.Duration
	// MaxAccounts bounds the accounts held in memory per partition; beyond it, checkpointed
	// accounts are evicted and read back from Redis when they come again.
	MaxAccounts int
	// CheckpointInterval is the least time between two Redis checkpoints of the windows.
	CheckpointInterval time.Duration
	// DeviceRefresh is how old a cached device's accounts may get before they are read again.
	DeviceRefresh time.Duration
	// TerminalRefresh is how old a cached terminal's tiles may get before all of them are read
	// again (until then only newer tiles are read as events move on to them).
	TerminalRefresh time.Duration
	Features        features.Config
	Kafka           kafka.Config
	Redis           redisclient.Config
	Log             telemetry.Config
}

func loadConfig(e *config.Env) (Config, error) {
	host, _ := os.Hostname()
	def := features.DefaultConfig()
	group := e.String("VIGIL_FEATURE_WINDOW_GROUP", "vigil-feature-window")
	c := Config{
		Addr:               e.String("VIGIL_FEATURE_WINDOW_ADDR", "127.0.0.1:8081"),
		DebugAddr:          e.String("VIGIL_FEATURE_WINDOW_DEBUG_ADDR", ""),
		Group:              group,
		LabelsGroup:        e.String("VIGIL_FEATURE_WINDOW_LABELS_GROUP", group+"-labels"),
		TransactionalID:    e.String("VIGIL_FEATURE_WINDOW_TRANSACTIONAL_ID", "vigil-feature-window-"+host),
		MaxPollRecords:     e.Int("VIGIL_FEATURE_WINDOW_MAX_POLL_RECORDS", 2000, 1, 100_000),
		Fetch:              kafka.LoadFetch(e, "VIGIL_FEATURE_WINDOW", kafka.PipelineFetch()),
		CommitInterval:     e.DurationRange("VIGIL_FEATURE_WINDOW_COMMIT_INTERVAL", 0, 0, 10*time.Second),
		CatchUpTimeout:     e.Duration("VIGIL_FEATURE_WINDOW_CATCH_UP_TIMEOUT", 5*time.Minute),
		MaxAccounts:        e.Int("VIGIL_FEATURE_WINDOW_MAX_ACCOUNTS", 200_000, 100, 100_000_000),
		CheckpointInterval: e.DurationRange("VIGIL_FEATURE_WINDOW_CHECKPOINT_INTERVAL", time.Second, 0, time.Minute),
		DeviceRefresh:      e.DurationRange("VIGIL_FEATURE_WINDOW_DEVICE_REFRESH", time.Second, 0, time.Minute),
		TerminalRefresh:    e.DurationRange("VIGIL_FEATURE_WINDOW_TERMINAL_REFRESH", 10*time.Minute, 0, 24*time.Hour),
		InstanceID:         e.String("VIGIL_FEATURE_WINDOW_INSTANCE_ID", ""),
		SessionTimeout:     e.Duration("VIGIL_FEATURE_WINDOW_SESSION_TIMEOUT", 45*time.Second),
		Features: features.Config{
			LabelDelay:      e.Duration("VIGIL_FEATURE_WINDOW_LABEL_DELAY", def.LabelDelay),
			AllowedLateness: e.Duration("VIGIL_FEATURE_WINDOW_ALLOWED_LATENESS", def.AllowedLateness),
		},
		Kafka: kafka.LoadConfig(e),
		Redis: redisclient.LoadConfig(e),
		Log:   telemetry.Config{Format: e.String("VIGIL_LOG_FORMAT", "json"), Level: e.String("VIGIL_LOG_LEVEL", "info")},
	}
	if c.CatchUpTimeout < time.Second {
		e.Fail("VIGIL_FEATURE_WINDOW_CATCH_UP_TIMEOUT", "%s is shorter than 1s", c.CatchUpTimeout)
	}
	if c.Features.LabelDelay < 0 {
		e.Fail("VIGIL_FEATURE_WINDOW_LABEL_DELAY", "must not be negative")
	}
	if c.Features.AllowedLateness < 0 {
		e.Fail("VIGIL_FEATURE_WINDOW_ALLOWED_LATENESS", "must not be negative")
	}
	if c.DebugAddr != "" {
		if err := httpserver.CheckDebugAddr(c.DebugAddr); err != nil {
			e.Fail("VIGIL_FEATURE_WINDOW_DEBUG_ADDR", "%v", err)
		}
	}
	if err := e.Err(); err != nil {
		return c, fmt.Errorf("configuration: %w", err)
	}
	return c, nil
}
