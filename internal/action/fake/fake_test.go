package fake_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/goscaler/goscaler/internal/action"
	"github.com/goscaler/goscaler/internal/action/fake"
	"github.com/goscaler/goscaler/internal/store"
)

func TestAction(t *testing.T) {
	t.Parallel()
	name := t.Name()
	t.Cleanup(func() { fake.Forget(name) })
	if _, err := action.Registry.DecodeJSON("fake", []byte(`{}`)); err == nil {
		t.Fatal("a fake action without instance was accepted")
	}
	// The config survives its JSON round trip (as stored with an activity).
	cfg, err := action.Registry.DecodeJSON("fake", []byte(`{"instance":"`+name+`","name":"one"}`))
	if err != nil {
		t.Fatal(err)
	}
	act, err := cfg.New(action.Env{})
	if err != nil {
		t.Fatal(err)
	}
	f := fake.Get(name)
	run := action.Run{Activity: store.Activity{ID: 7}, Cluster: "c", Attempt: 2, Interrupted: true}

	out, err := act.Run(t.Context(), run)
	if err != nil || out != "ran one" {
		t.Fatalf("default result %q, %v", out, err)
	}
	boom := errors.New("boom")
	f.SetResult("one", "partial", boom)
	if out, err := act.Run(t.Context(), run); out != "partial" || !errors.Is(err, boom) {
		t.Fatalf("SetResult ignored: %q, %v", out, err)
	}
	runs := f.Runs()
	if len(runs) != 2 || runs[0].ActivityID != 7 || runs[0].Attempt != 2 || !runs[0].Interrupted || runs[0].Name != "one" {
		t.Fatalf("runs = %+v", runs)
	}

	// Hold: the run waits until released, and its ctx ends the wait.
	release := f.Hold("one")
	started := make(chan struct{}, 1)
	f.OnRun(func(fake.Record) { started <- struct{}{} })
	done := make(chan error, 1)
	go func() { _, err := act.Run(t.Context(), run); done <- err }()
	<-started
	select {
	case <-done:
		t.Fatal("a held run returned")
	case <-time.After(20 * time.Millisecond):
	}
	release()
	if err := <-done; !errors.Is(err, boom) {
		t.Fatalf("released run: %v", err)
	}
	release = f.Hold("one")
	defer release()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	go func() { <-started }()
	if _, err := act.Run(ctx, run); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("held run past its ctx: %v", err)
	}
}
