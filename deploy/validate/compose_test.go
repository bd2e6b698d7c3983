package validate

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
)

func loadCompose(t *testing.T) *types.Project {
	t.Helper()
	root := repoRoot(t)
	details := types.ConfigDetails{
		WorkingDir:  root,
		ConfigFiles: []types.ConfigFile{{Filename: filepath.Join(root, "docker-compose.yml")}},
		// No host variables: the file must not depend on the developer's shell.
		Environment: types.Mapping{},
	}
	p, err := loader.LoadWithContext(context.Background(), details, func(o *loader.Options) {
		o.SetProjectName("vigil", true)
		o.Profiles = []string{"*"} // optional profiles (model training) are checked too
		o.ResolvePaths = true
	})
	if err != nil {
		t.Fatalf("docker-compose.yml does not load: %v", err)
	}
	return p
}

// vigilDeployable is the Dockerfile SERVICE a compose service builds, or "".
func vigilDeployable(s types.ServiceConfig) string {
	if s.Build == nil || !strings.HasSuffix(s.Build.Dockerfile, "deploy/docker/Dockerfile") {
		return ""
	}
	if v := s.Build.Args["SERVICE"]; v != nil {
		return *v
	}
	return ""
}

var longRunning = map[string]string{ // compose service → its Dockerfile SERVICE
	"ingest": "ingest", "feature-window": "feature-window", "scoring": "scoring", "alerting": "alerting",
}

func TestComposeEnvMatchesServiceSource(t *testing.T) {
	t.Parallel()
	p := loadCompose(t)
	seen := 0
	for name, s := range p.Services {
		dep := vigilDeployable(s)
		if dep == "" {
			continue
		}
		seen++
		set := map[string]bool{}
		for k, v := range s.Environment {
			set[k] = v != nil && *v != ""
		}
		// The long-running service is the image's entrypoint with no subcommand.
		server := len(s.Command) == 0 || strings.HasPrefix(s.Command[0], "-")
		if dep == "vigil-send" || dep == "vigil-model" || dep == "vigilctl" {
			server = false
		}
		checkEnv(t, "docker-compose service "+name, dep, set, server)
	}
	if seen < 4 {
		t.Fatalf("found %d services built from deploy/docker/Dockerfile, want at least the four services", seen)
	}
}

func TestComposeServicesAreWiredForContainers(t *testing.T) {
	t.Parallel()
	p := loadCompose(t)
	for name, dep := range longRunning {
		s, ok := p.Services[name]
		if !ok {
			t.Errorf("service %s missing", name)
			continue
		}
		if got := vigilDeployable(s); got != dep {
			t.Errorf("%s: builds SERVICE=%q, want %q", name, got, dep)
		}
		addrVar := "VIGIL_" + strings.ToUpper(strings.ReplaceAll(dep, "-", "_")) + "_ADDR"
		addr := s.Environment[addrVar]
		if addr == nil || !strings.HasPrefix(*addr, "0.0.0.0:") {
			t.Errorf("%s: %s must bind 0.0.0.0 in a container (the default 127.0.0.1 is unreachable)", name, addrVar)
		}
		if s.HealthCheck == nil || len(s.HealthCheck.Test) < 2 || !strings.Contains(strings.Join(s.HealthCheck.Test, " "), "/readyz") {
			t.Errorf("%s: healthcheck must probe /readyz", name)
		} else if addr != nil && !strings.Contains(strings.Join(s.HealthCheck.Test, " "), ":"+strings.TrimPrefix(*addr, "0.0.0.0:")+"/") {
			t.Errorf("%s: healthcheck %v does not probe the port of %s=%s", name, s.HealthCheck.Test, addrVar, *addr)
		}
		if len(s.DependsOn) == 0 {
			t.Errorf("%s: no depends_on", name)
		}
	}
	for name, s := range p.Services {
		for dep, cond := range s.DependsOn {
			target, ok := p.Services[dep]
			if !ok {
				t.Errorf("%s depends on unknown service %s", name, dep)
				continue
			}
			switch cond.Condition {
			case types.ServiceConditionHealthy:
				if target.HealthCheck == nil || target.HealthCheck.Disable {
					t.Errorf("%s waits for %s to be healthy, but %s has no healthcheck", name, dep, dep)
				}
			case types.ServiceConditionCompletedSuccessfully:
				if target.Restart != "" && target.Restart != "no" {
					t.Errorf("%s waits for %s to complete, but %s restarts (%s)", name, dep, dep, target.Restart)
				}
			case types.ServiceConditionStarted:
			default:
				t.Errorf("%s → %s: unknown condition %q", name, dep, cond.Condition)
			}
		}
	}
}

// Secrets travel as files: a variable the code reads through config.Env.Secret must be set as
// NAME_FILE pointing at a compose secret the service mounts, never inline.
func TestComposeSecretsAreFiles(t *testing.T) {
	t.Parallel()
	p := loadCompose(t)
	for name, s := range p.Services {
		dep := vigilDeployable(s)
		mounted := map[string]bool{}
		for _, sec := range s.Secrets {
			target := sec.Target
			if target == "" {
				target = sec.Source
			}
			if !strings.HasPrefix(target, "/") {
				target = "/run/secrets/" + target
			}
			mounted[target] = true
			if _, ok := p.Secrets[sec.Source]; !ok {
				t.Errorf("%s: mounts undefined secret %s", name, sec.Source)
			}
		}
		for k, v := range s.Environment {
			if v == nil {
				continue
			}
			if strings.HasSuffix(k, "_FILE") && strings.HasPrefix(*v, "/run/secrets/") && !mounted[*v] {
				t.Errorf("%s: %s=%s but that secret is not mounted in the service", name, k, *v)
			}
			if dep == "" {
				continue
			}
			env, err := sources(t).service(dep)
			if err != nil {
				t.Fatal(err)
			}
			if env.IsSecret(k) {
				t.Errorf("%s: secret %s set inline; use %s_FILE with a compose secret", name, k, k)
			}
		}
	}
	for n, sec := range p.Secrets {
		if sec.File == "" {
			t.Errorf("secret %s: want file: (the dev secrets under deploy/docker/secrets)", n)
		}
	}
}

func TestComposeKafkaIsExactlyOnceReady(t *testing.T) {
	t.Parallel()
	p := loadCompose(t)
	k, ok := p.Services["kafka"]
	if !ok {
		t.Fatal("no kafka service")
	}
	if !strings.HasPrefix(k.Image, "apache/kafka:4.") {
		t.Errorf("kafka image %q: want apache/kafka pinned to a 4.x tag", k.Image)
	}
	want := map[string]string{
		"KAFKA_PROCESS_ROLES":                            "broker,controller",
		"KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
		"KAFKA_TRANSACTION_STATE_LOG_MIN_ISR":            "1",
		"KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR":         "1",
		"KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS":         "0",
	}
	for key, v := range want {
		if got := k.Environment[key]; got == nil || *got != v {
			t.Errorf("kafka: %s = %v, want %q", key, deref(got), v)
		}
	}
	for name, s := range p.Services {
		if s.Image == "" && s.Build == nil {
			t.Errorf("%s: neither image nor build", name)
		}
		if s.Build == nil && (strings.HasSuffix(s.Image, ":latest") || !strings.Contains(s.Image, ":")) {
			t.Errorf("%s: image %q is not pinned to a version tag", name, s.Image)
		}
	}
}

func deref(s *string) string {
	if s == nil {
		return "<unset>"
	}
	return *s
}
