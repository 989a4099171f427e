// snapshots-badrequests: malformed and conflicting requests get the gRPC codes that
// containerd's overlay snapshotter returns (containerd reacts to those codes, e.g. GC
// tolerates FailedPrecondition on Remove), rejected requests change nothing, and the
// daemon keeps serving afterwards.
package badrequests

import (
	"io"
	"strings"
	"testing"
	"time"

	snapshotsapi "github.com/containerd/containerd/api/services/snapshots/v1"
	"github.com/gogo/protobuf/types"
	"google.golang.org/grpc/codes"
)

// Fixture snapshots, created once:
//
//	committed  COMMITTED, parent ""      (children: view, child)
//	active     ACTIVE,    parent ""
//	view       VIEW,      parent committed
//	child      ACTIVE,    parent committed
const (
	committed = "bad/1/sha256:committed"
	active    = "bad/2/extract-1 sha256:active"
	view      = "bad/3/view"
	child     = "bad/4/child"
	unknown   = "bad/404/no such snapshot"
)

const labelRef = "containerd.io/snapshot.ref"

func TestBadRequests(t *testing.T) {
	f := newFixture(t)

	_, err := f.prepare("bad/0/to-commit", "", nil)
	mustOK(t, "fixture Prepare", err)
	mustOK(t, "fixture Commit", f.commit(committed, "bad/0/to-commit", map[string]string{labelRef: "sha256:committed"}))
	_, err = f.prepare(active, "", map[string]string{"containerd.io/snapshot/x": "y"})
	mustOK(t, "fixture Prepare", err)
	mustOK(t, "fixture View", f.view(view, committed, nil))
	_, err = f.prepare(child, committed, nil)
	mustOK(t, "fixture Prepare child", err)

	t.Run("UnknownKey", f.unknownKey)
	t.Run("MissingParent", f.missingParent)
	t.Run("ParentNotCommitted", f.parentNotCommitted)
	t.Run("ExistingKey", f.existingKey)
	t.Run("CommitToExistingName", f.commitToExistingName)
	t.Run("CommitNotActive", f.commitNotActive)
	t.Run("MountsOnCommitted", f.mountsOnCommitted)
	t.Run("RemoveWithChildren", f.removeWithChildren)
	t.Run("UpdateImmutableFields", f.updateImmutable)
	t.Run("EmptyKey", f.emptyKey)
	t.Run("NULInKey", f.nulInKey)
	t.Run("LabelTooLarge", f.labelTooLarge)
	t.Run("OpaqueKeys", f.opaqueKeys)

	t.Run("StillServing", func(t *testing.T) {
		select {
		case <-f.d.Done():
			t.Fatalf("daemon exited during the bad requests: %s", f.d.ExitDescription())
		default:
		}
		_, err := f.prepare("bad/final/after everything", committed, nil)
		mustOK(t, "Prepare after all bad requests", err)
		mustOK(t, "Commit after all bad requests", f.commit("bad/final/committed", "bad/final/after everything", nil))
		if err := f.d.Stop(); err != nil {
			t.Errorf("SIGTERM after the bad requests: %v", err)
		}
	})
}

func (f *fixture) unknownKey(t *testing.T) {
	_, err := f.stat(unknown)
	wantCode(t, "Stat(unknown)", err, codes.NotFound)
	_, err = f.mounts(unknown)
	wantCode(t, "Mounts(unknown)", err, codes.NotFound)
	cx, cancel := ctx()
	_, err = f.c.Usage(cx, &snapshotsapi.UsageRequest{Snapshotter: sn, Key: unknown})
	cancel()
	wantCode(t, "Usage(unknown)", err, codes.NotFound)
	wantCode(t, "Remove(unknown)", f.remove(unknown), codes.NotFound)
	wantCode(t, "Commit(name new, key unknown)", f.commit("bad/404/new name", unknown, nil), codes.NotFound)
	f.wantAbsent(t, "bad/404/new name", "Commit of an unknown key")
	cx, cancel = ctx()
	_, err = f.c.Update(cx, &snapshotsapi.UpdateSnapshotRequest{
		Snapshotter: sn,
		Info:        snapshotsapi.Info{Name: unknown, Labels: map[string]string{"containerd.io/snapshot/a": "b"}},
		UpdateMask:  &types.FieldMask{Paths: []string{"labels"}},
	})
	cancel()
	wantCode(t, "Update(unknown)", err, codes.NotFound)
	f.wantAbsent(t, unknown, "Update of an unknown key")
}

func (f *fixture) missingParent(t *testing.T) {
	_, err := f.prepare("bad/5/orphan", "bad/404/missing parent", nil)
	wantCode(t, "Prepare with a missing parent", err, codes.NotFound)
	f.wantAbsent(t, "bad/5/orphan", "Prepare with a missing parent")
	wantCode(t, "View with a missing parent", f.view("bad/5/orphan view", "bad/404/missing parent", nil), codes.NotFound)
	f.wantAbsent(t, "bad/5/orphan view", "View with a missing parent")
}

func (f *fixture) parentNotCommitted(t *testing.T) {
	_, err := f.prepare("bad/6/on active", active, nil)
	wantCode(t, "Prepare with an ACTIVE parent", err, codes.InvalidArgument)
	f.wantAbsent(t, "bad/6/on active", "Prepare with an ACTIVE parent")
	wantCode(t, "View with an ACTIVE parent", f.view("bad/6/view on active", active, nil), codes.InvalidArgument)
	f.wantAbsent(t, "bad/6/view on active", "View with an ACTIVE parent")
	_, err = f.prepare("bad/6/on view", view, nil)
	wantCode(t, "Prepare with a VIEW parent", err, codes.InvalidArgument)
	f.wantAbsent(t, "bad/6/on view", "Prepare with a VIEW parent")
}

func (f *fixture) existingKey(t *testing.T) {
	before, err := f.stat(active)
	mustOK(t, "Stat(active)", err)
	_, err = f.prepare(active, "", map[string]string{"containerd.io/snapshot/x": "changed"})
	wantCode(t, "Prepare with an existing ACTIVE key", err, codes.AlreadyExists)
	f.wantUnchanged(t, before, "Prepare with an existing key")

	// Keys and committed names share one namespace, as in containerd's bolt store.
	beforeC, err := f.stat(committed)
	mustOK(t, "Stat(committed)", err)
	_, err = f.prepare(committed, "", nil)
	wantCode(t, "Prepare with a key equal to a committed name", err, codes.AlreadyExists)
	f.wantUnchanged(t, beforeC, "Prepare with a committed name as key")

	beforeV, err := f.stat(view)
	mustOK(t, "Stat(view)", err)
	wantCode(t, "View with an existing key", f.view(view, committed, nil), codes.AlreadyExists)
	f.wantUnchanged(t, beforeV, "View with an existing key")
}

func (f *fixture) commitToExistingName(t *testing.T) {
	const key = "bad/7/active for commit"
	_, err := f.prepare(key, "", nil)
	mustOK(t, "Prepare", err)
	beforeKey, err := f.stat(key)
	mustOK(t, "Stat", err)
	beforeC, err := f.stat(committed)
	mustOK(t, "Stat(committed)", err)

	wantCode(t, "Commit to an existing committed name", f.commit(committed, key, nil), codes.AlreadyExists)
	wantCode(t, "Commit to a name that is an existing active key", f.commit(active, key, nil), codes.AlreadyExists)
	f.wantUnchanged(t, beforeKey, "Commit to an existing name")
	f.wantUnchanged(t, beforeC, "Commit to an existing name")
	if _, err := f.mounts(key); err != nil {
		t.Errorf("after a rejected Commit, Mounts(%q) of the still-active key: %v", key, err)
	}
}

func (f *fixture) commitNotActive(t *testing.T) {
	beforeV, err := f.stat(view)
	mustOK(t, "Stat(view)", err)
	wantCode(t, "Commit of a VIEW key", f.commit("bad/8/from view", view, nil), codes.FailedPrecondition)
	f.wantAbsent(t, "bad/8/from view", "Commit of a VIEW key")
	f.wantUnchanged(t, beforeV, "Commit of a VIEW key")

	beforeC, err := f.stat(committed)
	mustOK(t, "Stat(committed)", err)
	wantCode(t, "Commit of a COMMITTED key", f.commit("bad/8/from committed", committed, nil), codes.FailedPrecondition)
	f.wantAbsent(t, "bad/8/from committed", "Commit of a COMMITTED key")
	f.wantUnchanged(t, beforeC, "Commit of a COMMITTED key")
}

func (f *fixture) mountsOnCommitted(t *testing.T) {
	_, err := f.mounts(committed)
	wantCode(t, "Mounts on a COMMITTED snapshot", err, codes.FailedPrecondition)
}

func (f *fixture) removeWithChildren(t *testing.T) {
	before, err := f.stat(committed)
	mustOK(t, "Stat(committed)", err)
	wantCode(t, "Remove of a snapshot with children", f.remove(committed), codes.FailedPrecondition)
	f.wantUnchanged(t, before, "Remove of a snapshot with children")
	// The children must still work, i.e. nothing underneath them was deleted.
	if _, err := f.mounts(child); err != nil {
		t.Errorf("after a rejected Remove of its parent, Mounts(%q): %v", child, err)
	}
	if _, err := f.mounts(view); err != nil {
		t.Errorf("after a rejected Remove of its parent, Mounts(%q): %v", view, err)
	}
}

func (f *fixture) updateImmutable(t *testing.T) {
	before, err := f.stat(committed)
	mustOK(t, "Stat(committed)", err)
	// Every immutable field carries a different value, plus a label change, so an
	// implementation that ignores the mask or applies part of it is caught too.
	attempt := snapshotsapi.Info{
		Name:      committed,
		Parent:    active,
		Kind:      snapshotsapi.KindActive,
		CreatedAt: time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC),
		UpdatedAt: time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC),
		Labels:    map[string]string{labelRef: "sha256:changed", "containerd.io/snapshot/new": "v"},
	}
	for _, mask := range [][]string{
		{"name"}, {"parent"}, {"kind"}, {"created_at"},
		{"labels.containerd.io/snapshot/new", "parent"}, // valid path + invalid path: all or nothing
	} {
		cx, cancel := ctx()
		_, err := f.c.Update(cx, &snapshotsapi.UpdateSnapshotRequest{
			Snapshotter: sn, Info: attempt, UpdateMask: &types.FieldMask{Paths: mask},
		})
		cancel()
		what := "Update with mask " + strings.Join(mask, ",")
		wantCode(t, what, err, codes.InvalidArgument)
		f.wantUnchanged(t, before, what)
	}

	// Control: a labels-only Update on the same record is accepted, so the rejections
	// above are about the mask and not about the record.
	cx, cancel := ctx()
	r, err := f.c.Update(cx, &snapshotsapi.UpdateSnapshotRequest{
		Snapshotter: sn, Info: attempt, UpdateMask: &types.FieldMask{Paths: []string{"labels.containerd.io/snapshot/new"}},
	})
	cancel()
	if err != nil {
		t.Errorf("Update with mask labels.containerd.io/snapshot/new: %v", err)
	} else if r.Info.Labels["containerd.io/snapshot/new"] != "v" || r.Info.Labels[labelRef] != "sha256:committed" ||
		r.Info.Parent != before.Parent || r.Info.Kind != before.Kind || !r.Info.CreatedAt.Equal(before.CreatedAt) {
		t.Errorf("Update with mask labels.containerd.io/snapshot/new returned %s; want only that label added to %s", brief(r.Info), brief(before))
	}
}

func (f *fixture) emptyKey(t *testing.T) {
	_, err := f.prepare("", "", nil)
	wantCode(t, "Prepare with an empty key", err, codes.InvalidArgument)
	wantCode(t, "View with an empty key", f.view("", committed, nil), codes.InvalidArgument)

	const key = "bad/9/active for empty name"
	_, err = f.prepare(key, "", nil)
	mustOK(t, "Prepare", err)
	before, err := f.stat(key)
	mustOK(t, "Stat", err)
	wantCode(t, "Commit with an empty name", f.commit("", key, nil), codes.InvalidArgument)
	f.wantUnchanged(t, before, "Commit with an empty name")
	f.wantNoName(t, func(n string) bool { return n == "" }, "empty key")
}

func (f *fixture) nulInKey(t *testing.T) {
	const bad = "bad/10/nul\x00key"
	_, err := f.prepare(bad, "", nil)
	wantCode(t, "Prepare with a NUL byte in the key", err, codes.InvalidArgument)
	wantCode(t, "View with a NUL byte in the key", f.view(bad+" view", committed, nil), codes.InvalidArgument)

	const key = "bad/10/active for nul name"
	_, err = f.prepare(key, "", nil)
	mustOK(t, "Prepare", err)
	before, err := f.stat(key)
	mustOK(t, "Stat", err)
	wantCode(t, "Commit with a NUL byte in the name", f.commit(bad+" committed", key, nil), codes.InvalidArgument)
	f.wantUnchanged(t, before, "Commit with a NUL byte in the name")
	// A C string API would see "bad/10/nul"; make sure no such truncated record appeared.
	f.wantAbsent(t, "bad/10/nul", "requests with a NUL byte in the key")
	f.wantNoName(t, func(n string) bool { return strings.ContainsRune(n, 0) }, "NUL byte")
}

// wantNoName checks that List shows no record matching bad.
func (f *fixture) wantNoName(t *testing.T, bad func(string) bool, what string) {
	t.Helper()
	infos, err := f.list()
	if err != nil {
		t.Errorf("List: %v", err)
		return
	}
	for _, info := range infos {
		if bad(info.Name) {
			t.Errorf("after rejected requests with %s, List shows %q", what, info.Name)
		}
	}
}

func (f *fixture) list() ([]snapshotsapi.Info, error) {
	cx, cancel := ctx()
	defer cancel()
	stream, err := f.c.List(cx, &snapshotsapi.ListSnapshotsRequest{Snapshotter: sn})
	if err != nil {
		return nil, err
	}
	var out []snapshotsapi.Info
	for {
		r, err := stream.Recv()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, r.Info...)
	}
}

func (f *fixture) labelTooLarge(t *testing.T) {
	// containerd's limit (labels.Validate): len(key)+len(value) <= 4096.
	const lk = "containerd.io/snapshot/big"
	fits := map[string]string{lk: strings.Repeat("v", 4096-len(lk))}
	tooBig := map[string]string{lk: strings.Repeat("v", 4096-len(lk)+1)}

	_, err := f.prepare("bad/11/too big", "", tooBig)
	wantCode(t, "Prepare with a 4097-byte label", err, codes.InvalidArgument)
	f.wantAbsent(t, "bad/11/too big", "Prepare with a 4097-byte label")
	wantCode(t, "View with a 4097-byte label", f.view("bad/11/too big view", committed, tooBig), codes.InvalidArgument)
	f.wantAbsent(t, "bad/11/too big view", "View with a 4097-byte label")

	// Exactly at the limit is still valid.
	const key = "bad/11/fits"
	_, err = f.prepare(key, "", fits)
	if err != nil {
		t.Errorf("Prepare with a label of exactly 4096 bytes: %v (containerd accepts len(key)+len(value) == 4096)", err)
		_, err = f.prepare(key, "", nil)
		mustOK(t, "Prepare", err)
	}
	before, err := f.stat(key)
	mustOK(t, "Stat", err)
	wantCode(t, "Commit with a 4097-byte label", f.commit("bad/11/committed", key, tooBig), codes.InvalidArgument)
	f.wantAbsent(t, "bad/11/committed", "Commit with a 4097-byte label")
	f.wantUnchanged(t, before, "Commit with a 4097-byte label")

	cx, cancel := ctx()
	_, err = f.c.Update(cx, &snapshotsapi.UpdateSnapshotRequest{
		Snapshotter: sn, Info: snapshotsapi.Info{Name: key, Labels: tooBig},
		UpdateMask: &types.FieldMask{Paths: []string{"labels." + lk}},
	})
	cancel()
	wantCode(t, "Update with a 4097-byte label", err, codes.InvalidArgument)
	f.wantUnchanged(t, before, "Update with a 4097-byte label")

	// The key counts too: a long label key with a short value.
	longKey := map[string]string{"containerd.io/snapshot/" + strings.Repeat("k", 4096): "v"}
	_, err = f.prepare("bad/11/long label key", "", longKey)
	wantCode(t, "Prepare with a 4096-byte label key", err, codes.InvalidArgument)
	f.wantAbsent(t, "bad/11/long label key", "Prepare with a 4096-byte label key")
}
