package badrequests

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"testing"
	"time"

	snapshotsapi "github.com/containerd/containerd/api/services/snapshots/v1"
	"github.com/containerd/containerd/pkg/testutil"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"snapimport/tests/conformance/harness"
)

// fixture is one daemon plus a raw gRPC client. The raw client (not containerd's proxy)
// is used so the exact gRPC status codes are visible: the proxy folds several codes into
// errdefs classes.
type fixture struct {
	d    *harness.Daemon
	c    snapshotsapi.SnapshotsClient
	base string // temp dir holding everything; the daemon root is deep inside it
	root string
}

const sn = harness.SnapshotterName

func newFixture(t *testing.T) *fixture {
	testutil.RequiresRoot(t)
	if _, err := harness.Bin(); err != nil {
		t.Fatal(err)
	}
	base, err := os.MkdirTemp("", "snapimport-bad-")
	if err != nil {
		t.Fatal(err)
	}
	// The root sits two levels below base, with siblings around it, so keys such as
	// "../x" or "../../etc/passwd" used as paths would land in base, where the test
	// can see them, rather than somewhere shared.
	f := &fixture{base: base, root: filepath.Join(base, "l1", "l2", "root")}
	for _, dir := range []string{"l1/l2/sibling", "l1/sibling", "sibling", "cwd", "run"} {
		if err := os.MkdirAll(filepath.Join(base, dir), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(base, dir, "keep"), []byte("keep\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	logPath := filepath.Join(harness.LogDir(base), "badrequests.log")
	f.d, err = harness.Start(harness.Options{
		Root:    f.root,
		Socket:  filepath.Join(base, "run", "snapimport.sock"),
		LogPath: logPath,
		Dir:     filepath.Join(base, "cwd"), // relative paths would resolve here
	})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := f.d.Dial()
	if err != nil {
		f.d.Kill()
		t.Fatalf("dial: %v", err)
	}
	f.c = snapshotsapi.NewSnapshotsClient(conn)
	t.Cleanup(func() {
		conn.Close()
		f.d.Stop()
		if t.Failed() {
			t.Logf("kept %s; %s", base, harness.FileTail(logPath, 40))
			return
		}
		os.RemoveAll(base)
	})
	return f
}

func ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 30*time.Second)
}

// wantCode checks the gRPC status code of err.
func wantCode(t *testing.T, what string, err error, want codes.Code) {
	t.Helper()
	if got := status.Code(err); got != want {
		t.Errorf("%s: got code %v (%v), want %v", what, got, err, want)
	}
}

func (f *fixture) prepare(key, parent string, labels map[string]string) (*snapshotsapi.PrepareSnapshotResponse, error) {
	cx, cancel := ctx()
	defer cancel()
	return f.c.Prepare(cx, &snapshotsapi.PrepareSnapshotRequest{Snapshotter: sn, Key: key, Parent: parent, Labels: labels})
}

func (f *fixture) view(key, parent string, labels map[string]string) error {
	cx, cancel := ctx()
	defer cancel()
	_, err := f.c.View(cx, &snapshotsapi.ViewSnapshotRequest{Snapshotter: sn, Key: key, Parent: parent, Labels: labels})
	return err
}

func (f *fixture) commit(name, key string, labels map[string]string) error {
	cx, cancel := ctx()
	defer cancel()
	_, err := f.c.Commit(cx, &snapshotsapi.CommitSnapshotRequest{Snapshotter: sn, Name: name, Key: key, Labels: labels})
	return err
}

func (f *fixture) remove(key string) error {
	cx, cancel := ctx()
	defer cancel()
	_, err := f.c.Remove(cx, &snapshotsapi.RemoveSnapshotRequest{Snapshotter: sn, Key: key})
	return err
}

func (f *fixture) stat(key string) (snapshotsapi.Info, error) {
	cx, cancel := ctx()
	defer cancel()
	r, err := f.c.Stat(cx, &snapshotsapi.StatSnapshotRequest{Snapshotter: sn, Key: key})
	if err != nil {
		return snapshotsapi.Info{}, err
	}
	return r.Info, nil
}

func (f *fixture) mounts(key string) (*snapshotsapi.MountsResponse, error) {
	cx, cancel := ctx()
	defer cancel()
	return f.c.Mounts(cx, &snapshotsapi.MountsRequest{Snapshotter: sn, Key: key})
}

func (f *fixture) cleanup() error {
	cx, cancel := ctx()
	defer cancel()
	_, err := f.c.Cleanup(cx, &snapshotsapi.CleanupRequest{Snapshotter: sn})
	return err
}

// mustOK fails the test now: later steps depend on this one.
func mustOK(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// wantAbsent checks that a rejected request left no record behind.
func (f *fixture) wantAbsent(t *testing.T, key, why string) {
	t.Helper()
	if info, err := f.stat(key); status.Code(err) != codes.NotFound {
		t.Errorf("after %s, Stat(%q) = %s, %v; want NotFound (the rejected request must not create it)", why, key, brief(info), err)
	}
}

// wantUnchanged checks that a rejected request did not modify a record.
func (f *fixture) wantUnchanged(t *testing.T, before snapshotsapi.Info, why string) {
	t.Helper()
	after, err := f.stat(before.Name)
	if err != nil {
		t.Errorf("after %s, Stat(%q): %v", why, before.Name, err)
		return
	}
	if after.Name != before.Name || after.Parent != before.Parent || after.Kind != before.Kind ||
		!after.CreatedAt.Equal(before.CreatedAt) || !after.UpdatedAt.Equal(before.UpdatedAt) ||
		!reflect.DeepEqual(nonNil(after.Labels), nonNil(before.Labels)) {
		t.Errorf("after %s, record %q changed:\n  before: %s\n  after:  %s", why, before.Name, brief(before), brief(after))
	}
}

func nonNil(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

// brief formats an Info for messages, shortening long label keys and values.
func brief(info snapshotsapi.Info) string {
	short := func(s string) string {
		if len(s) > 48 {
			return fmt.Sprintf("%s...(%d bytes)", s[:40], len(s))
		}
		return s
	}
	var labels []string
	for k, v := range info.Labels {
		labels = append(labels, short(k)+"="+short(v))
	}
	sort.Strings(labels)
	return fmt.Sprintf("{name=%q parent=%q kind=%v created=%s updated=%s labels=%v}",
		info.Name, info.Parent, info.Kind, info.CreatedAt.Format(time.RFC3339Nano),
		info.UpdatedAt.Format(time.RFC3339Nano), labels)
}
