package rules

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"gopkg.in/yaml.v3"
)

type yamlFile struct {
	Rules []yamlRule `yaml:"rules"`
}

type yamlRule struct {
	ID          string `yaml:"id"`
	Version     int    `yaml:"version"`
	Expression  string `yaml:"expression"`
	Action      Action `yaml:"action"`
	Reason      string `yaml:"reason"`
	Priority    int    `yaml:"priority"`
	Enabled     *bool  `yaml:"enabled"`
	Description string `yaml:"description"`
}

// ParseYAML reads a rules file (see services/scoring/rules.yaml). Unknown keys are errors, a
// missing version is 1 and a missing enabled is true. It does not compile: Compile does.
func ParseYAML(name string, data []byte) ([]Rule, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var f yamlFile
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: rules file %s: %w", ErrInvalid, name, err)
	}
	if len(f.Rules) == 0 {
		return nil, fmt.Errorf("%w: rules file %s has no rules", ErrInvalid, name)
	}
	out := make([]Rule, 0, len(f.Rules))
	for _, y := range f.Rules {
		r := Rule{ID: y.ID, Version: y.Version, Expression: y.Expression, Action: y.Action, Reason: y.Reason,
			Priority: y.Priority, Enabled: y.Enabled == nil || *y.Enabled, Description: y.Description}
		if r.Version == 0 {
			r.Version = 1
		}
		out = append(out, r)
	}
	return out, nil
}
