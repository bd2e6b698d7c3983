// Package redisclient opens the go-redis client every Redis-backed service uses.
package redisclient

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/vigil-fraud/vigil/libs/config"
	"github.com/vigil-fraud/vigil/libs/startup"
)

// Config is the Redis part of a service's configuration.
type Config struct {
	Addr     string
	Password string
	DB       int
	// KeyPrefix namespaces every key, so tests and tenants can share one server.
	KeyPrefix string
	PoolSize  int
	// StartupWait is how long Open keeps trying to reach the server (0: one try).
	StartupWait time.Duration
}

// LoadConfig reads VIGIL_REDIS_ADDR, VIGIL_REDIS_PASSWORD(_FILE), VIGIL_REDIS_DB,
// VIGIL_REDIS_KEY_PREFIX, VIGIL_REDIS_POOL_SIZE and VIGIL_REDIS_STARTUP_WAIT.
func LoadConfig(e *config.Env) Config {
	return Config{
		Addr:        e.String("VIGIL_REDIS_ADDR", "127.0.0.1:56379"),
		Password:    e.Secret("VIGIL_REDIS_PASSWORD", false),
		DB:          e.Int("VIGIL_REDIS_DB", 0, 0, 15),
		KeyPrefix:   e.String("VIGIL_REDIS_KEY_PREFIX", "vigil:"),
		PoolSize:    e.Int("VIGIL_REDIS_POOL_SIZE", 20, 1, 1000),
		StartupWait: e.DurationRange("VIGIL_REDIS_STARTUP_WAIT", time.Minute, 0, time.Hour),
	}
}

// Open connects and pings, for up to cfg.StartupWait while the server is not up.
func Open(ctx context.Context, cfg Config) (*redis.Client, error) {
	rdb := redis.NewClient(&redis.Options{
		Addr:         cfg.Addr,
		Password:     cfg.Password,
		DB:           cfg.DB,
		PoolSize:     cfg.PoolSize,
		DialTimeout:  3 * time.Second,
		ReadTimeout:  2 * time.Second,
		WriteTimeout: 2 * time.Second,
	})
	err := startup.Wait(ctx, cfg.StartupWait, "redis", func(ctx context.Context) error {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		err := rdb.Ping(pctx).Err()
		// Redis answered with an error (NOAUTH, WRONGPASS...): only LOADING heals by waiting.
		if re := redis.Error(nil); errors.As(err, &re) && !strings.HasPrefix(re.Error(), "LOADING") {
			return startup.Permanent(err)
		}
		return err
	})
	if err != nil {
		_ = rdb.Close()
		return nil, fmt.Errorf("ping redis %s: %w", cfg.Addr, err)
	}
	return rdb, nil
}
