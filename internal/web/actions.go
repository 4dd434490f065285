package web

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/goscaler/goscaler/internal/controller"
	"github.com/goscaler/goscaler/internal/store"
)

// done records an action's outcome for the next page and sends the browser
// back to where the form was (Post/Redirect/Get).
func (u *UI) done(w http.ResponseWriter, r *http.Request, s *session, f flash) {
	u.sessions.setFlash(s, f)
	back := localPath(r.PostFormValue("back"))
	if back == "/" {
		back = "/clusters/" + url.PathEscape(r.PathValue("name"))
	}
	http.Redirect(w, r, back, http.StatusSeeOther) //nolint:gosec // localPath keeps back on this server
}

// refused reports an action the controller would not do (out of bounds, a
// node not live) on the page it came from; other errors are the server's.
func (u *UI) refused(w http.ResponseWriter, r *http.Request, s *session, err error) error {
	if errors.Is(err, controller.ErrInvalid) || errors.Is(err, errBadInput) || errors.Is(err, store.ErrNotFound) {
		msg := strings.TrimPrefix(err.Error(), controller.ErrInvalid.Error()+": ")
		u.done(w, r, s, flash{Error: true, Text: msg})
		return nil
	}
	return err
}

func (u *UI) scale(w http.ResponseWriter, r *http.Request, s *session) error {
	name := r.PathValue("name")
	raw := strings.TrimSpace(r.PostFormValue("desired"))
	desired, err := strconv.Atoi(raw)
	if err != nil {
		return u.refused(w, r, s, fmt.Errorf("%w: the desired size %q is not a whole number", errBadInput, raw))
	}
	c, err := u.ctl.Scale(r.Context(), name, desired, "scaled by hand in the web UI")
	if err != nil {
		return u.refused(w, r, s, err)
	}
	u.done(w, r, s, flash{Text: fmt.Sprintf("The desired size of %s is now %d: goscaler launches or removes nodes to match.", c.Name, c.Desired),
		Link: "/activities?cluster=" + url.QueryEscape(name) + "&kind=scale", LinkText: "see the activity"})
	return nil
}

func (u *UI) fire(w http.ResponseWriter, r *http.Request, s *session) error {
	name, trigger := r.PathValue("name"), r.PathValue("trigger")
	a, err := u.ctl.Fire(r.Context(), name, trigger, fmt.Sprintf("trigger %s fired by hand in the web UI", trigger))
	if err != nil && a.ID == 0 {
		return u.refused(w, r, s, err)
	}
	f := flash{Text: fmt.Sprintf("Trigger %s fired: its actions run now.", trigger),
		Link: fmt.Sprintf("/activities/%d", a.ID), LinkText: fmt.Sprintf("activity #%d", a.ID)}
	if err != nil {
		// Recorded, but its first step could not be queued yet: the
		// controller queues it again shortly.
		f.Text = fmt.Sprintf("Trigger %s fired, but queueing its first step failed (it is retried): %v", trigger, err)
	}
	u.done(w, r, s, f)
	return nil
}

func (u *UI) maintenance(w http.ResponseWriter, r *http.Request, s *session) error {
	name, node := r.PathValue("name"), r.PathValue("node")
	var on bool
	switch r.PostFormValue("on") {
	case "true":
		on = true
	case "false":
	default:
		return u.refused(w, r, s, fmt.Errorf("%w: on must be true or false", errBadInput))
	}
	n, a, err := u.ctl.SetMaintenance(r.Context(), name, node, on, "set by hand in the web UI")
	if err != nil {
		return u.refused(w, r, s, err)
	}
	f := flash{Text: fmt.Sprintf("Node %s is out of maintenance: back in the load balancer and in healing.", n.ID)}
	if on {
		f.Text = fmt.Sprintf("Node %s is in maintenance: out of the load balancer (its requests drain) and out of healing.", n.ID)
	}
	if a.ID != 0 {
		f.Link, f.LinkText = fmt.Sprintf("/activities/%d", a.ID), fmt.Sprintf("activity #%d", a.ID)
	}
	u.done(w, r, s, f)
	return nil
}

// execTimeout bounds a command run on every node from the UI.
const execTimeout = 2 * time.Minute

func (u *UI) exec(w http.ResponseWriter, r *http.Request, s *session) error {
	name := r.PathValue("name")
	command := strings.TrimSpace(r.PostFormValue("command"))
	if command == "" {
		return u.refused(w, r, s, fmt.Errorf("%w: give a command to run", errBadInput))
	}
	rep, err := u.ctl.Exec(r.Context(), name, command, nil, execTimeout)
	if err != nil {
		return u.refused(w, r, s, err)
	}
	failed := 0
	for _, res := range rep.Results {
		if res.ExitCode != 0 || res.Error != "" {
			failed++
		}
	}
	f := flash{Text: fmt.Sprintf("Ran %q on %d node(s) of %s: %d succeeded, %d failed.", command, len(rep.Results), name,
		len(rep.Results)-failed, failed), Error: failed > 0,
		Link: fmt.Sprintf("/activities/%d", rep.Activity), LinkText: "the output of each node"}
	u.done(w, r, s, f)
	return nil
}
