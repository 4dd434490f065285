package store

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestSampleJSON(t *testing.T) {
	t.Parallel()
	at := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		s    Sample
		want string
	}{
		{Sample{Cluster: "web", Counter: "cpu", At: at, Value: 1.5, Reporting: 2, Expected: 3},
			`{"cluster":"web","counter":"cpu","at":"2030-01-02T03:04:05Z","value":1.5,"reporting":2,"expected":3}`},
		{Sample{Cluster: "web", Counter: "cpu", Node: "web-1", At: at, Value: 7, Err: "refused"},
			`{"cluster":"web","counter":"cpu","node":"web-1","at":"2030-01-02T03:04:05Z","error":"refused","value":null}`},
	}
	for _, tc := range tests {
		b, err := json.Marshal(tc.s)
		if err != nil || string(b) != tc.want {
			t.Errorf("Marshal(%+v) = %s, %v; want %s", tc.s, b, err, tc.want)
		}
		var back Sample
		if err := json.Unmarshal(b, &back); err != nil || back.Err != tc.s.Err || (tc.s.OK() && back != tc.s) {
			t.Errorf("Unmarshal(%s) = %+v, %v", b, back, err)
		}
	}
}

func TestAgentReadingJSON(t *testing.T) {
	t.Parallel()
	good := []struct {
		in   string
		want AgentReading
		out  string
	}{
		{`0.5`, AgentReading{Value: 0.5}, `{"value":0.5}`},
		{`{"value": 0}`, AgentReading{}, `{"value":0}`},
		{`{"error": "df failed"}`, AgentReading{Err: "df failed"}, `{"error":"df failed"}`},
		{`"timed out"`, AgentReading{Err: "timed out"}, `{"error":"timed out"}`},
	}
	for _, tc := range good {
		var r AgentReading
		if err := json.Unmarshal([]byte(tc.in), &r); err != nil || r != tc.want {
			t.Errorf("Unmarshal(%s) = %+v, %v; want %+v", tc.in, r, err, tc.want)
		}
		if b, err := json.Marshal(r); err != nil || string(b) != tc.out {
			t.Errorf("Marshal(%+v) = %s, %v; want %s", r, b, err, tc.out)
		}
	}
	bad := map[string]string{
		`{"value": 1, "error": "x"}`: "both a value and an error",
		`{}`:                         `neither "value" nor "error"`,
		`{"value": null}`:            `neither "value" nor "error"`,
		`""`:                         "an empty error message",
		`[1]`:                        "must be a number",
		`{"value": "1"}`:             "cannot unmarshal",
		`{"val": 1}`:                 "unknown field",
	}
	for in, want := range bad {
		var r AgentReading
		if err := json.Unmarshal([]byte(in), &r); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Unmarshal(%s) = %v, want an error containing %q", in, err, want)
		}
	}
}
