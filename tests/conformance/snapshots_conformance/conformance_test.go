// snapshots-conformance: containerd's own snapshotter test suite, run against
// `snapimport serve` through containerd's proxy snapshotter client, i.e. exactly the
// path containerd uses for a proxy plugin. containerd's overlayfs snapshotter passes all
// cases this way, so every failure here is a difference from what containerd expects.
package conformance

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	snapshotsapi "github.com/containerd/containerd/api/services/snapshots/v1"
	"github.com/containerd/containerd/log"
	"github.com/containerd/containerd/pkg/testutil"
	"github.com/containerd/containerd/snapshots"
	"github.com/containerd/containerd/snapshots/proxy"
	"github.com/containerd/containerd/snapshots/testsuite"

	"snapimport/tests/conformance/harness"
)

func TestSnapimportSnapshotter(t *testing.T) {
	// The suite mounts overlays and chowns files; it skips itself without -test.root.
	testutil.RequiresRoot(t)
	if _, err := harness.Bin(); err != nil {
		t.Fatal(err)
	}
	testsuite.SnapshotterSuite(t, harness.SnapshotterName, newSnapshotter)
}

// newSnapshotter is the suite's factory, called once per case with a fresh root: each
// case gets its own daemon, so one case's state or crash cannot leak into another.
func newSnapshotter(ctx context.Context, root string) (snapshots.Snapshotter, func() error, error) {
	// The suite names its temp dir snapshot-suite-snapimport-<random>; reuse that so a
	// case's log can be found next to the case in the output.
	caseDir := filepath.Dir(root)
	logPath := filepath.Join(harness.LogDir(caseDir), filepath.Base(caseDir)+".log")
	d, err := harness.Start(harness.Options{
		Root:    filepath.Join(root, "daemon"),
		Socket:  filepath.Join(root, "snapimport.sock"),
		LogPath: logPath,
	})
	if err != nil {
		return nil, nil, err
	}
	conn, err := d.Dial()
	if err != nil {
		d.Kill()
		return nil, nil, fmt.Errorf("dial %s: %w\n%s", d.Socket, err, d.LogTail(30))
	}
	sn := proxy.NewSnapshotter(snapshotsapi.NewSnapshotsClient(conn), harness.SnapshotterName)

	closeFn := func() error {
		conn.Close()
		stopErr := d.Stop()
		// Surface what the daemon complained about; the suite's logger prints it only
		// with -v or when the case fails.
		log.G(ctx).Infof("daemon log: %s", logPath)
		for _, l := range problemLines(logPath, 20) {
			log.G(ctx).Info("daemon: " + l)
		}
		if stopErr != nil {
			return fmt.Errorf("%w\n%s", stopErr, harness.FileTail(logPath, 30))
		}
		return nil
	}
	return sn, closeFn, nil
}

// problemLines returns up to max logfmt lines at level warn or error.
func problemLines(path string, max int) []string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() && len(out) < max {
		l := sc.Text()
		if strings.Contains(l, "level=error") || strings.Contains(l, "level=warn") ||
			strings.Contains(l, "level=fatal") {
			out = append(out, l)
		}
	}
	return out
}
