package crash

import (
	"errors"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	snapshotsapi "github.com/containerd/containerd/api/services/snapshots/v1"
	"github.com/containerd/containerd/pkg/testutil"
	"github.com/containerd/containerd/snapshots/proxy"

	"snapimport/tests/conformance/harness"
)

// The daemon's fault-injection points (SNAPIMPORT_CRASH_AT=<point>[:<n>]) and the
// operation each one belongs to.
var crashPoints = []struct{ point, op string }{
	{"prepare.dir-created", "prepare"},
	{"prepare.renamed", "prepare"},
	{"prepare.committed", "prepare"},
	{"commit.usage-computed", "commit"},
	{"commit.committed", "commit"},
	{"remove.committed", "remove"},
	{"cleanup.partial", "cleanup"},
}

// maxRounds bounds the workload when waiting for a crash point; every point is hit at
// least once per round, so :3 fires by round 3.
const maxRounds = 6

// killRounds is how many times the busy loop is killed from outside.
const killRounds = 5

// env is one daemon root that survives restarts.
type env struct {
	base, root, socket, logPath, scratch string
	seq                                  int64
}

func newEnv(t *testing.T) *env {
	testutil.RequiresRoot(t)
	if _, err := harness.Bin(); err != nil {
		t.Fatal(err)
	}
	base, err := os.MkdirTemp("", "snapimport-crash-")
	if err != nil {
		t.Fatal(err)
	}
	e := &env{
		base:    base,
		root:    filepath.Join(base, "root"),
		socket:  filepath.Join(base, "snapimport.sock"),
		scratch: filepath.Join(base, "mnt"),
		logPath: filepath.Join(harness.LogDir(base),
			"crash-"+strings.NewReplacer("/", "_", ":", "_").Replace(t.Name())+".log"),
	}
	if err := os.MkdirAll(e.scratch, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("kept %s for inspection; daemon log: %s", base, e.logPath)
			return
		}
		os.RemoveAll(base)
	})
	return e
}

func (e *env) start(t *testing.T, extraEnv ...string) *harness.Daemon {
	t.Helper()
	d, err := harness.Start(harness.Options{Root: e.root, Socket: e.socket, LogPath: e.logPath, Env: extraEnv})
	if err != nil {
		t.Fatalf("start daemon (env %q): %v", extraEnv, err)
	}
	return d
}

// driver connects a driver for model m to daemon d.
func (e *env) driver(t *testing.T, d *harness.Daemon, m *model) (*driver, func()) {
	t.Helper()
	conn, err := d.Dial()
	if err != nil {
		d.Kill()
		t.Fatalf("dial: %v\n%s", err, d.LogTail(30))
	}
	dr := &driver{
		sn:   proxy.NewSnapshotter(snapshotsapi.NewSnapshotsClient(conn), harness.SnapshotterName),
		m:    m,
		died: func() bool { return d.Exited(2 * time.Second) },
		seq:  &e.seq,
	}
	return dr, func() { conn.Close() }
}

// TestCrashPoints crashes the daemon at each injection point, once on the first hit and
// once on the third (so there is earlier state to damage), then checks the restart.
func TestCrashPoints(t *testing.T) {
	for _, cp := range crashPoints {
		for _, spec := range []string{cp.point, cp.point + ":3"} {
			cp, spec := cp, spec
			t.Run(spec, func(t *testing.T) { runCrashPoint(t, spec, cp.op) })
		}
	}
}

func runCrashPoint(t *testing.T, spec, wantOp string) {
	e := newEnv(t)
	m := newModel()
	d := e.start(t, "SNAPIMPORT_CRASH_AT="+spec)
	dr, closeConn := e.driver(t, d, m)

	var died *errDaemonDied
	prevView := ""
	for r := 0; r < maxRounds && died == nil; r++ {
		err := dr.round(&prevView)
		if err != nil && !errors.As(err, &died) {
			closeConn()
			d.Kill()
			t.Fatalf("SNAPIMPORT_CRASH_AT=%s, round %d: %v\n%s", spec, r, err, d.LogTail(30))
		}
	}
	closeConn()
	if died == nil {
		stopErr := d.Stop()
		t.Fatalf("SNAPIMPORT_CRASH_AT=%s: the daemon never crashed in %d rounds (%d operations completed; stop: %v)\n%s",
			spec, maxRounds, dr.ops, stopErr, d.LogTail(30))
	}
	t.Logf("daemon died during %s after %d completed operations: %s", died.op, dr.ops, d.ExitDescription())
	if !d.KilledBySIGKILL() {
		t.Errorf("SNAPIMPORT_CRASH_AT=%s: daemon ended with %q, want death by SIGKILL\n%s",
			spec, d.ExitDescription(), d.LogTail(30))
	}
	if died.op.kind != wantOp && !(wantOp == "prepare" && died.op.kind == "view") {
		t.Errorf("SNAPIMPORT_CRASH_AT=%s fired during %s, want it during a %s", spec, died.op, wantOp)
	}
	e.restartAndCheck(t, m, died.op)
}

// TestKillDuringBusyLoop kills the daemon with kill -9 from outside at random moments
// while it is busy, restarts it on the same root, and checks consistency each time. The
// state accumulates across rounds, so later rounds also test recovery of recovered state.
func TestKillDuringBusyLoop(t *testing.T) {
	e := newEnv(t)
	m := newModel()
	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewSource(seed))
	t.Logf("random seed %d", seed)

	for r := 0; r < killRounds; r++ {
		d := e.start(t)
		dr, closeConn := e.driver(t, d, m)
		errc := make(chan error, 1)
		go func() {
			prevView := ""
			for {
				if err := dr.round(&prevView); err != nil {
					errc <- err
					return
				}
			}
		}()
		delay := time.Duration(20+rng.Intn(400)) * time.Millisecond
		select {
		case err := <-errc:
			closeConn()
			d.Kill()
			t.Fatalf("kill round %d: workload failed before the kill (daemon %s): %v\n%s",
				r, d.ExitDescription(), err, d.LogTail(30))
		case <-time.After(delay):
		}
		d.Kill()
		err := <-errc
		closeConn()
		var died *errDaemonDied
		if !errors.As(err, &died) {
			t.Fatalf("kill round %d: %v\n%s", r, err, d.LogTail(30))
		}
		t.Logf("kill round %d: killed after %v, %d operations; in flight: %s", r, delay, dr.ops, died.op)
		e.restartAndCheck(t, m, died.op)
		if t.Failed() {
			return // later rounds would only repeat the same damage
		}
	}
}

// restartAndCheck restarts the daemon without fault injection on the same root and
// checks it against the model; the in-doubt operation may have happened or not, but
// not half. It ends by doing fresh work and stopping the daemon cleanly.
func (e *env) restartAndCheck(t *testing.T, m *model, inDoubt *op) {
	t.Helper()
	d := e.start(t)
	dr, closeConn := e.driver(t, d, m)
	defer closeConn()
	c := &checker{sn: dr.sn, m: m, root: e.root, scratch: e.scratch}
	report := func(stage string, p problems) {
		t.Helper()
		for _, msg := range p {
			t.Errorf("after restart (%s): %s", stage, msg)
		}
	}

	happened, p := c.resolve(inDoubt)
	if inDoubt != nil {
		t.Logf("in-doubt %s happened: %v", inDoubt, happened)
	}
	report("in-doubt operation", p)
	p, _ = c.records()
	report("records", p)
	report("committed data", c.views(dr))
	report("directories", c.liveDirectories())

	// The restarted daemon must keep working: a new layer on top of the survivors.
	n := dr.next()
	active, name := fmt.Sprintf("post/%d/active", n), fmt.Sprintf("post/%d/%s", n, chainID(n))
	mounts, err := dr.prepare(active, m.latestCommitted())
	if err == nil {
		err = dr.writeLayer(active, mounts, fmt.Sprintf("post%d", n))
	}
	if err == nil {
		err = dr.commit(name, active, nil)
	}
	if err != nil {
		t.Errorf("after restart: new Prepare/Commit: %v", err)
	} else {
		report("new work", c.viewOne(dr, name))
		report("directories after new work", c.liveDirectories())
	}

	if err := d.Stop(); err != nil {
		t.Errorf("stop restarted daemon: %v", err)
	}
	if t.Failed() {
		t.Logf("%s", harness.FileTail(e.logPath, 40))
	}
}

// liveDirectories runs the directory check against a fresh List count.
func (c *checker) liveDirectories() problems {
	listed, err := c.list()
	if err != nil {
		return problems{fmt.Sprintf("List: %v", err)}
	}
	return c.directories(len(listed))
}
