package process

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// procRoot is where the proc file system is mounted.
const procRoot = "/proc"

// procStat is what this package needs from /proc/<pid>/stat.
type procStat struct {
	State     byte   // field 3: R, S, D, Z, X, …
	PPID      int    // field 4
	PGRP      int    // field 5
	StartTime string // field 22: clock ticks since boot, kept as text
}

// dead reports whether the process has exited (a zombie waiting to be reaped,
// or a task being torn down).
func (s procStat) dead() bool { return s.State == 'Z' || s.State == 'X' || s.State == 'x' }

// readStat reads /proc/<pid>/stat. A process that does not exist is an error
// wrapping fs.ErrNotExist.
func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile(fmt.Sprintf("%s/%d/stat", procRoot, pid))
	if err != nil {
		return procStat{}, err
	}
	return parseStat(b)
}

// parseStat parses the content of /proc/<pid>/stat. The command name (field 2)
// is in parentheses and may hold spaces and parentheses itself, so the fields
// are counted from the last ')'.
func parseStat(b []byte) (procStat, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, errors.New("malformed stat: no command name")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3; field n is f[n-3].
	const startField = 22
	if len(f) <= startField-3 {
		return procStat{}, fmt.Errorf("malformed stat: %d fields after the command name", len(f))
	}
	if len(f[0]) != 1 {
		return procStat{}, fmt.Errorf("malformed stat: state %q", f[0])
	}
	ppid, err := strconv.Atoi(f[4-3])
	if err != nil {
		return procStat{}, fmt.Errorf("malformed stat: ppid: %w", err)
	}
	pgrp, err := strconv.Atoi(f[5-3])
	if err != nil {
		return procStat{}, fmt.Errorf("malformed stat: pgrp: %w", err)
	}
	start := f[startField-3]
	if _, err := strconv.ParseUint(start, 10, 64); err != nil {
		return procStat{}, fmt.Errorf("malformed stat: start time: %w", err)
	}
	return procStat{State: f[0][0], PPID: ppid, PGRP: pgrp, StartTime: start}, nil
}

// readEnviron reads /proc/<pid>/environ: the environment the process was
// started with. It fails for processes of other users (permission) and is
// empty for zombies.
func readEnviron(pid int) (map[string]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("%s/%d/environ", procRoot, pid))
	if err != nil {
		return nil, err
	}
	return parseEnviron(b), nil
}

// parseEnviron parses NUL-separated KEY=VALUE pairs; the last value of a key wins.
func parseEnviron(b []byte) map[string]string {
	env := map[string]string{}
	for kv := range bytes.SplitSeq(b, []byte{0}) {
		k, v, ok := bytes.Cut(kv, []byte{'='})
		if !ok || len(k) == 0 {
			continue
		}
		env[string(k)] = string(v)
	}
	return env
}

// listPIDs returns the PIDs of the thread-group leaders under /proc (threads
// are not listed there, only under /proc/<pid>/task).
func listPIDs() ([]int, error) {
	entries, err := os.ReadDir(procRoot)
	if err != nil {
		return nil, err
	}
	pids := make([]int, 0, len(entries))
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid <= 0 {
			continue
		}
		pids = append(pids, pid)
	}
	return pids, nil
}
