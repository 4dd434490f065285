package plugin_test

import (
	"testing"

	"github.com/goscaler/goscaler/internal/plugin"
)

func TestUsesNodeVars(t *testing.T) {
	t.Parallel()
	tests := []struct {
		src  string
		want bool
	}{
		{"http://{{.Address}}/stats", true},
		{"http://{{.Host}}:9100/metrics", true},
		{`Catalina:name="http-{{.Port}}"`, true},
		{`{{index . "Address"}}`, true},
		{`{{if .NodeID}}{{.Host}}{{end}}`, true},
		{`{{with .Region}}{{$.Port}}{{end}}`, true},
		{`{{range $k, $v := .}}{{end}}{{.Address | printf "%s"}}`, true},
		{"http://lb:8080/stats", false},
		{"{{.Cluster}}-{{.NodeID}}", false},
		{`{{index . "Region"}}`, false},
		{"{{.Address", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := plugin.UsesNodeVars(tt.src); got != tt.want {
			t.Errorf("UsesNodeVars(%q) = %t, want %t", tt.src, got, tt.want)
		}
	}
}
