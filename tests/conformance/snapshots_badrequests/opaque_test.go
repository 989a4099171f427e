package badrequests

import (
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	snapshotsapi "github.com/containerd/containerd/api/services/snapshots/v1"
	"github.com/containerd/containerd/api/types"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Keys that would escape or confuse the root if the daemon ever used a key as a path.
// containerd sends keys with '/' and spaces; every one of these is a valid opaque key.
var opaqueKeys = []string{
	"../x",
	"../../etc/passwd",
	"/abs/path",
	"key with spaces/and/slashes",
	"..",
	".",
	"a/../../../b",
	"trailing/slash/",
	"//double//slashes",
	"meta.db",
	"snapshots",
	"back\\slash and * glob",
}

// opaqueKeys: every key above is accepted and works end to end (Prepare, write, Commit,
// View, Remove, Cleanup), and nothing is created, changed or deleted outside the root.
func (f *fixture) opaqueKeys(t *testing.T) {
	// Sentinels where a key-derived path outside the root would land: they must survive
	// Remove and Cleanup of that key.
	derived := map[string][]string{}
	for _, k := range opaqueKeys {
		derived[k] = f.derivedPaths(k)
		for _, p := range derived[k] {
			if !f.insideRoot(p) && strings.HasPrefix(p, f.base+"/") {
				if _, err := os.Lstat(p); os.IsNotExist(err) {
					plantSentinel(t, p)
				}
			}
		}
	}
	existed := map[string]bool{}
	for _, ps := range derived {
		for _, p := range ps {
			_, err := os.Lstat(p)
			existed[p] = err == nil
		}
	}
	outside := f.treeOutsideRoot(t)
	passwd := fileState("/etc/passwd")

	checkOutside := func(stage string) {
		t.Helper()
		for _, d := range diffTrees(outside, f.treeOutsideRoot(t)) {
			t.Errorf("after %s: outside the daemon root: %s", stage, d)
		}
		for k, ps := range derived {
			for _, p := range ps {
				if _, err := os.Lstat(p); err == nil && !existed[p] {
					t.Errorf("after %s: path %s derived from key %q now exists", stage, p, k)
				}
			}
		}
		if now := fileState("/etc/passwd"); now != passwd {
			t.Errorf("after %s: /etc/passwd changed: %s -> %s", stage, passwd, now)
		}
		if _, err := os.Lstat("/abs"); err == nil {
			t.Errorf("after %s: /abs exists (key %q used as a path?)", stage, "/abs/path")
		}
	}

	for i, k := range opaqueKeys {
		name := k + "/committed"
		viewKey := k + " view"
		r, err := f.prepare(k, "", map[string]string{"containerd.io/snapshot/key": k})
		if err != nil {
			t.Errorf("Prepare(%q): %v; want it accepted as an opaque key", k, err)
			continue
		}
		f.checkMounts(t, fmt.Sprintf("Prepare(%q)", k), r.Mounts)
		if info, err := f.stat(k); err != nil || info.Name != k || info.Kind != snapshotsapi.KindActive {
			t.Errorf("Stat(%q) = %+v, %v; want the ACTIVE snapshot with exactly that name", k, info, err)
		}
		// Write into the snapshot, as an unpack would, so Commit has data to account.
		if upper := upperDir(r.Mounts); upper != "" {
			if err := os.WriteFile(filepath.Join(upper, "data"), []byte(k), 0o644); err != nil {
				t.Errorf("write into %q: %v", k, err)
			}
		}
		if err := f.commit(name, k, nil); err != nil {
			t.Errorf("Commit(%q, %q): %v", name, k, err)
			continue
		}
		if err := f.view(viewKey, name, nil); err != nil {
			t.Errorf("View(%q, %q): %v", viewKey, name, err)
		} else if m, err := f.mounts(viewKey); err != nil {
			t.Errorf("Mounts(%q): %v", viewKey, err)
		} else {
			f.checkMounts(t, fmt.Sprintf("Mounts(%q)", viewKey), m.Mounts)
		}
		if i == len(opaqueKeys)-1 {
			checkOutside("creating snapshots with opaque keys")
		}
	}

	for _, k := range opaqueKeys {
		for _, key := range []string{k + " view", k + "/committed", k} {
			if err := f.remove(key); err != nil && status.Code(err) != codes.NotFound {
				t.Errorf("Remove(%q): %v", key, err)
			}
		}
	}
	if err := f.cleanup(); err != nil {
		t.Errorf("Cleanup: %v", err)
	}
	checkOutside("removing them and Cleanup")
	for _, k := range opaqueKeys {
		f.wantAbsent(t, k, "Remove")
	}
}

// derivedPaths are the places a key would end up if it were joined onto a directory
// the daemon uses (or onto its working directory, or used as is).
func (f *fixture) derivedPaths(key string) []string {
	var out []string
	seen := map[string]bool{}
	for _, dir := range []string{
		f.root,
		filepath.Join(f.root, "snapshots"),
		filepath.Join(f.root, "staging"),
		filepath.Join(f.root, "content"),
		filepath.Join(f.base, "cwd"),
	} {
		p := filepath.Join(dir, key)
		if p != f.root && p != dir && !strings.HasPrefix(f.root, p+"/") && !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	if filepath.IsAbs(key) && !seen[filepath.Clean(key)] {
		out = append(out, filepath.Clean(key))
	}
	return out
}

func (f *fixture) insideRoot(p string) bool {
	return p == f.root || strings.HasPrefix(p, f.root+"/")
}

func plantSentinel(t *testing.T, p string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("sentinel: must survive\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// checkMounts requires every path in the mounts to resolve inside the daemon root.
func (f *fixture) checkMounts(t *testing.T, what string, mounts []*types.Mount) {
	t.Helper()
	root, err := filepath.EvalSymlinks(f.root)
	if err != nil {
		t.Fatal(err)
	}
	check := func(kind, p string) {
		real, err := filepath.EvalSymlinks(p)
		if err != nil {
			t.Errorf("%s: %s %s: %v", what, kind, p, err)
			return
		}
		if !strings.HasPrefix(real, root+"/") {
			t.Errorf("%s: %s %s resolves to %s, outside the daemon root %s", what, kind, p, real, root)
		}
	}
	if len(mounts) == 0 {
		t.Errorf("%s: no mounts", what)
	}
	for _, m := range mounts {
		if m.Type == "bind" || m.Type == "rbind" {
			check("bind source", m.Source)
		}
		for _, o := range m.Options {
			kv := strings.SplitN(o, "=", 2)
			switch {
			case len(kv) != 2:
			case kv[0] == "upperdir" || kv[0] == "workdir":
				check(kv[0], kv[1])
			case kv[0] == "lowerdir":
				for _, l := range strings.Split(kv[1], ":") {
					check("lowerdir", l)
				}
			}
		}
	}
}

func upperDir(mounts []*types.Mount) string {
	if len(mounts) != 1 {
		return ""
	}
	if mounts[0].Type == "bind" {
		return mounts[0].Source
	}
	for _, o := range mounts[0].Options {
		if strings.HasPrefix(o, "upperdir=") {
			return strings.TrimPrefix(o, "upperdir=")
		}
	}
	return ""
}

// treeOutsideRoot records every path under base except the daemon root and the daemon
// log, with enough state (type, size, mtime, content hash) to see any change.
func (f *fixture) treeOutsideRoot(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.Walk(f.base, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if p == f.root {
			return filepath.SkipDir
		}
		if p == f.d.LogPath {
			return nil
		}
		out[p] = fileState(p)
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", f.base, err)
	}
	return out
}

func fileState(p string) string {
	fi, err := os.Lstat(p)
	if err != nil {
		return "absent"
	}
	s := fmt.Sprintf("%v size=%d mtime=%d", fi.Mode(), fi.Size(), fi.ModTime().UnixNano())
	if fi.Mode().IsRegular() {
		if data, err := os.ReadFile(p); err == nil {
			s += fmt.Sprintf(" sha256=%x", sha256.Sum256(data))
		}
	}
	return s
}

func diffTrees(before, after map[string]string) []string {
	var out []string
	for p, s := range after {
		if b, ok := before[p]; !ok {
			out = append(out, fmt.Sprintf("created %s (%s)", p, s))
		} else if b != s {
			out = append(out, fmt.Sprintf("changed %s: %s -> %s", p, b, s))
		}
	}
	for p := range before {
		if _, ok := after[p]; !ok {
			out = append(out, fmt.Sprintf("deleted %s", p))
		}
	}
	sort.Strings(out)
	return out
}
