package policy

import (
	"fmt"
	"time"

	"github.com/goscaler/goscaler/internal/config"
)

// Resume is the state a Scaler resumes from after a restart.
type Resume struct {
	Memory Memory
	// Applied holds, by scheduled policy, the latest firing whose desired
	// size was set.
	Applied map[string]time.Time
}

// New builds the policy of configuration pc (validated).
func New(pc *config.Policy, resume Resume) (Policy, error) {
	switch {
	case pc.TargetTracking != nil:
		return NewTargetTracking(pc.Name, pc.TargetTracking), nil
	case pc.Step != nil:
		return NewStep(pc.Name, pc.Step), nil
	case pc.Scheduled != nil:
		return NewScheduled(pc.Name, pc.Scheduled, resume.Applied[pc.Name]), nil
	case pc.Predictive != nil:
		return NewPredictive(pc.Name, pc.Predictive), nil
	default:
		return nil, fmt.Errorf("policy %q: type %q was not decoded", pc.Name, pc.Type)
	}
}

// SettingsOf returns the Scaler settings of a cluster's configuration.
func SettingsOf(cl *config.Cluster) Settings {
	s := cl.PolicySettings()
	return Settings{ScaleOutCooldown: s.ScaleOutCooldown, ScaleInCooldown: s.ScaleInCooldown,
		Warmup: s.Warmup, ScaleInStabilization: s.ScaleInStabilization}
}

// Build returns the Scaler of a cluster's policies, resuming from resume.
func Build(cl *config.Cluster, resume Resume) (*Scaler, error) {
	var ps []Policy
	for _, pc := range cl.Policies {
		if pc == nil {
			continue
		}
		p, err := New(pc, resume)
		if err != nil {
			return nil, fmt.Errorf("cluster %q: %w", cl.Name, err)
		}
		ps = append(ps, p)
	}
	return NewScaler(SettingsOf(cl), ps, resume.Memory), nil
}
