// Package crash drives snapimport through Prepare/Commit/View/Remove/Cleanup until the
// daemon dies (by SNAPIMPORT_CRASH_AT or by our kill -9), then restarts it on the same
// root and checks that its records and directories still agree.
package crash

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/containerd/containerd/mount"
	"github.com/containerd/containerd/snapshots"
)

const opTimeout = 30 * time.Second

// snap is what the test believes about one snapshot, from acknowledged operations only.
type snap struct {
	name   string
	kind   snapshots.Kind
	parent string
	// files written into this snapshot's own upper directory while it was ACTIVE
	// (path relative to the snapshot root -> content). A Commit carries them over.
	files map[string]string
}

// model is the set of snapshots every acknowledged operation implies.
type model struct {
	snaps map[string]*snap
	// every key or name the test ever created, so Stat can be checked for removed ones too
	ever map[string]bool
}

func newModel() *model {
	return &model{snaps: map[string]*snap{}, ever: map[string]bool{}}
}

// op is one snapshotter call; the one that was in flight when the daemon died is "in doubt".
type op struct {
	kind   string // prepare, view, commit, remove, cleanup
	key    string
	name   string // commit only
	parent string // prepare/view only
}

func (o *op) String() string {
	switch o.kind {
	case "commit":
		return fmt.Sprintf("Commit(name=%q, key=%q)", o.name, o.key)
	case "prepare":
		return fmt.Sprintf("Prepare(key=%q, parent=%q)", o.key, o.parent)
	case "view":
		return fmt.Sprintf("View(key=%q, parent=%q)", o.key, o.parent)
	case "remove":
		return fmt.Sprintf("Remove(%q)", o.key)
	}
	return "Cleanup()"
}

// apply records the effect of a completed operation.
func (m *model) apply(o *op) {
	switch o.kind {
	case "prepare":
		m.snaps[o.key] = &snap{name: o.key, kind: snapshots.KindActive, parent: o.parent, files: map[string]string{}}
		m.ever[o.key] = true
	case "view":
		m.snaps[o.key] = &snap{name: o.key, kind: snapshots.KindView, parent: o.parent, files: map[string]string{}}
		m.ever[o.key] = true
	case "commit":
		s := m.snaps[o.key]
		delete(m.snaps, o.key)
		m.snaps[o.name] = &snap{name: o.name, kind: snapshots.KindCommitted, parent: s.parent, files: s.files}
		m.ever[o.name] = true
	case "remove":
		delete(m.snaps, o.key)
	}
}

// expectedTree is what a read-only view of snapshot name must show: the files of its
// whole parent chain, nearer snapshots overriding farther ones, as overlayfs layers them.
func (m *model) expectedTree(name string) map[string]string {
	var chain []*snap
	for n := name; n != ""; {
		s := m.snaps[n]
		if s == nil {
			break
		}
		chain = append(chain, s)
		n = s.parent
	}
	out := map[string]string{}
	for i := len(chain) - 1; i >= 0; i-- {
		for p, c := range chain[i].files {
			out[p] = c
		}
	}
	return out
}

func (m *model) names() []string {
	var out []string
	for n := range m.snaps {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// maxChain bounds parent chains: every lowerdir path goes into one mount option string,
// and long chains only slow the test down without exercising anything new.
const maxChain = 12

// latestCommitted returns a COMMITTED snapshot to build on: the one with the longest
// parent chain below maxChain, or "" to start a new chain.
func (m *model) latestCommitted() string {
	best, depth := "", -1
	for _, n := range m.names() {
		s := m.snaps[n]
		if s.kind != snapshots.KindCommitted {
			continue
		}
		d := 0
		for p := s.parent; p != "" && m.snaps[p] != nil; p = m.snaps[p].parent {
			d++
		}
		if d > depth && d < maxChain {
			best, depth = n, d
		}
	}
	return best
}

// errDaemonDied means the call failed because the daemon is gone; the op is in doubt.
type errDaemonDied struct {
	op    *op
	cause error
}

func (e *errDaemonDied) Error() string {
	return fmt.Sprintf("daemon died during %s: %v", e.op, e.cause)
}

// driver issues operations against one daemon and keeps the model in step.
type driver struct {
	sn snapshots.Snapshotter
	m  *model
	// died reports whether the daemon is gone after a failed call (waiting briefly for it).
	died func() bool
	// ops counts completed operations, for progress messages.
	ops int64
	// seq makes keys unique across rounds and restarts on the same root.
	seq *int64
}

// call runs one operation. A failure while the daemon is alive is a real error; a
// failure because the daemon died leaves the op in doubt for the checker to resolve.
func (dr *driver) call(o *op, fn func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	if err := fn(ctx); err != nil {
		if dr.died() {
			return &errDaemonDied{op: o, cause: err}
		}
		return fmt.Errorf("%s failed while the daemon was running: %w", o, err)
	}
	dr.m.apply(o)
	atomic.AddInt64(&dr.ops, 1)
	return nil
}

func (dr *driver) prepare(key, parent string) ([]mount.Mount, error) {
	var mounts []mount.Mount
	err := dr.call(&op{kind: "prepare", key: key, parent: parent}, func(ctx context.Context) (err error) {
		mounts, err = dr.sn.Prepare(ctx, key, parent)
		return err
	})
	return mounts, err
}

func (dr *driver) view(key, parent string) ([]mount.Mount, error) {
	var mounts []mount.Mount
	err := dr.call(&op{kind: "view", key: key, parent: parent}, func(ctx context.Context) (err error) {
		mounts, err = dr.sn.View(ctx, key, parent)
		return err
	})
	return mounts, err
}

func (dr *driver) commit(name, key string, labels map[string]string) error {
	return dr.call(&op{kind: "commit", key: key, name: name}, func(ctx context.Context) error {
		return dr.sn.Commit(ctx, name, key, snapshots.WithLabels(labels))
	})
}

func (dr *driver) remove(key string) error {
	return dr.call(&op{kind: "remove", key: key}, func(ctx context.Context) error {
		return dr.sn.Remove(ctx, key)
	})
}

func (dr *driver) cleanup() error {
	return dr.call(&op{kind: "cleanup"}, func(ctx context.Context) error {
		cl, ok := dr.sn.(snapshots.Cleaner)
		if !ok {
			return fmt.Errorf("proxy snapshotter has no Cleanup")
		}
		return cl.Cleanup(ctx)
	})
}

// upperDir is where a containerd differ would write into an ACTIVE snapshot: the
// overlay upperdir, or the bind source for a snapshot without parents.
func upperDir(mounts []mount.Mount) (string, error) {
	if len(mounts) != 1 {
		return "", fmt.Errorf("want exactly 1 mount for an active snapshot, got %d: %+v", len(mounts), mounts)
	}
	mt := mounts[0]
	switch mt.Type {
	case "bind", "rbind":
		return mt.Source, nil
	case "overlay":
		for _, o := range mt.Options {
			if strings.HasPrefix(o, "upperdir=") {
				return strings.TrimPrefix(o, "upperdir="), nil
			}
		}
		return "", fmt.Errorf("overlay mount of an active snapshot has no upperdir=: %+v", mt)
	}
	return "", fmt.Errorf("unexpected mount type %q: %+v", mt.Type, mt)
}

// writeLayer puts files into an active snapshot's upper directory, as unpacking a layer
// would, and records them in the model. "latest" is rewritten by every layer so a view
// proves the layers are stacked in the right order.
func (dr *driver) writeLayer(key string, mounts []mount.Mount, tag string) error {
	upper, err := upperDir(mounts)
	if err != nil {
		return fmt.Errorf("Prepare(%q): %w", key, err)
	}
	files := map[string]string{
		"layer-" + tag + ".txt":        "written into " + key + "\n",
		"dir-" + tag + "/nested/data":  strings.Repeat(tag, 1000),
		"latest":                       tag + "\n",
		"shared/" + tag + "-in-shared": tag,
	}
	for rel, content := range files {
		p := filepath.Join(upper, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("write into upper dir of %q: %w", key, err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			return fmt.Errorf("write into upper dir of %q: %w", key, err)
		}
	}
	s := dr.m.snaps[key]
	for rel, content := range files {
		s.files[rel] = content
	}
	return nil
}

// Keys and names look like the ones containerd's metadata layer sends (slashes, a space),
// so the daemon is exercised with realistic opaque keys.
func (dr *driver) next() int64 { return atomic.AddInt64(dr.seq, 1) }

func chainID(n int64) string {
	return fmt.Sprintf("sha256:%x", sha256.Sum256([]byte(fmt.Sprint(n))))
}

// round is one unit of work that touches every crash point at least once:
// Prepare (+write) → Commit → View → Prepare+Remove a throwaway → Remove an older view → Cleanup.
// It returns the first error; *errDaemonDied means the daemon went away mid-round.
func (dr *driver) round(prevView *string) error {
	n := dr.next()
	parent := dr.m.latestCommitted()
	active := fmt.Sprintf("crash/%d/extract-%d-abc %s", n, n, chainID(n))
	name := fmt.Sprintf("crash/%d/%s", n, chainID(n))
	view := fmt.Sprintf("crash/%d/view %s", n, chainID(n))
	throwaway := fmt.Sprintf("crash/%d/throwaway", n)

	mounts, err := dr.prepare(active, parent)
	if err != nil {
		return err
	}
	if err := dr.writeLayer(active, mounts, fmt.Sprintf("r%d", n)); err != nil {
		return err
	}
	if err := dr.commit(name, active, map[string]string{"containerd.io/snapshot.ref": chainID(n)}); err != nil {
		return err
	}
	if _, err := dr.view(view, name); err != nil {
		return err
	}
	if _, err := dr.prepare(throwaway, name); err != nil {
		return err
	}
	if err := dr.remove(throwaway); err != nil {
		return err
	}
	if *prevView != "" {
		if err := dr.remove(*prevView); err != nil {
			return err
		}
	}
	*prevView = view
	return dr.cleanup()
}
