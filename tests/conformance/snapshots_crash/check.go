package crash

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/containerd/containerd/errdefs"
	"github.com/containerd/containerd/mount"
	"github.com/containerd/containerd/snapshots"
)

// checker verifies a restarted daemon against the model. Each method returns every
// problem it finds (not just the first) so one run explains a whole inconsistency.
type checker struct {
	sn   snapshots.Snapshotter
	m    *model
	root string // the daemon's --root
	// scratch is a directory outside the daemon root for temporary mount points.
	scratch string
}

type problems []string

func (p *problems) add(format string, args ...interface{}) {
	*p = append(*p, fmt.Sprintf(format, args...))
}

func ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), opTimeout)
}

func (c *checker) list() (map[string]snapshots.Info, error) {
	cx, cancel := ctx()
	defer cancel()
	out := map[string]snapshots.Info{}
	err := c.sn.Walk(cx, func(_ context.Context, info snapshots.Info) error {
		if _, dup := out[info.Name]; dup {
			return fmt.Errorf("List returned %q twice", info.Name)
		}
		out[info.Name] = info
		return nil
	})
	return out, err
}

func (c *checker) stat(key string) (snapshots.Info, error) {
	cx, cancel := ctx()
	defer cancel()
	return c.sn.Stat(cx, key)
}

// resolve decides whether the in-doubt operation happened, from what the daemon shows,
// and updates the model accordingly. Half-done operations are reported.
func (c *checker) resolve(o *op) (happened bool, p problems) {
	if o == nil {
		return false, nil
	}
	exists := func(key string) (snapshots.Info, bool) {
		info, err := c.stat(key)
		if err == nil {
			return info, true
		}
		if !errdefs.IsNotFound(err) {
			p.add("in-doubt %s: Stat(%q) after restart: want the snapshot or NotFound, got %v", o, key, err)
		}
		return info, false
	}
	switch o.kind {
	case "prepare", "view":
		info, ok := exists(o.key)
		if !ok {
			return false, p
		}
		wantKind := snapshots.KindActive
		if o.kind == "view" {
			wantKind = snapshots.KindView
		}
		if info.Kind != wantKind || info.Parent != o.parent {
			p.add("in-doubt %s left a record with kind=%v parent=%q, want kind=%v parent=%q",
				o, info.Kind, info.Parent, wantKind, o.parent)
		}
		c.m.apply(o)
		return true, p
	case "commit":
		nameInfo, nameOK := exists(o.name)
		keyInfo, keyOK := exists(o.key)
		switch {
		case nameOK && !keyOK:
			if nameInfo.Kind != snapshots.KindCommitted {
				p.add("in-doubt %s: name exists with kind %v, want COMMITTED", o, nameInfo.Kind)
			}
			c.m.apply(o)
			return true, p
		case !nameOK && keyOK:
			if keyInfo.Kind != snapshots.KindActive {
				p.add("in-doubt %s did not happen but key now has kind %v, want ACTIVE", o, keyInfo.Kind)
			}
			return false, p
		case nameOK && keyOK:
			p.add("in-doubt %s half done: both the active key and the committed name exist after restart", o)
		default:
			p.add("in-doubt %s half done: neither the active key nor the committed name exists after restart", o)
		}
		return false, p
	case "remove":
		if _, ok := exists(o.key); ok {
			return false, p
		}
		c.m.apply(o)
		return true, p
	}
	return false, p // cleanup never changes records
}

// records checks List, Stat, parents and Mounts against each other and the model.
func (c *checker) records() (problems, map[string]snapshots.Info) {
	var p problems
	listed, err := c.list()
	if err != nil {
		p.add("List after restart: %v", err)
		return p, nil
	}

	// List and the model must agree exactly: acknowledged operations survive kill -9,
	// and nothing appears that no acknowledged or resolved operation created.
	for _, n := range c.m.names() {
		if _, ok := listed[n]; !ok {
			p.add("snapshot %q (%v), acknowledged before the crash, is missing from List after restart",
				n, c.m.snaps[n].kind)
		}
	}
	var extra []string
	for n := range listed {
		if c.m.snaps[n] == nil {
			extra = append(extra, n)
		}
	}
	sort.Strings(extra)
	for _, n := range extra {
		p.add("List after restart shows %q (%v, parent %q) that no completed operation created",
			n, listed[n].Kind, listed[n].Parent)
	}

	// Every listed name can be Stat'ed, with the same record.
	for n, info := range listed {
		st, err := c.stat(n)
		if err != nil {
			p.add("List shows %q but Stat(%q) fails: %v", n, n, err)
			continue
		}
		if st.Kind != info.Kind || st.Parent != info.Parent {
			p.add("Stat(%q) = kind %v parent %q, but List says kind %v parent %q", n, st.Kind, st.Parent, info.Kind, info.Parent)
		}
		if s := c.m.snaps[n]; s != nil && (s.kind != info.Kind || s.parent != info.Parent) {
			p.add("%q after restart: kind %v parent %q, want kind %v parent %q", n, info.Kind, info.Parent, s.kind, s.parent)
		}
	}
	// ... and vice versa: every key we ever created Stats iff it is listed.
	for k := range c.m.ever {
		_, inList := listed[k]
		_, err := c.stat(k)
		switch {
		case err == nil && !inList:
			p.add("Stat(%q) succeeds but List does not show it", k)
		case err != nil && inList:
			p.add("List shows %q but Stat fails: %v", k, err)
		case err != nil && !errdefs.IsNotFound(err):
			p.add("Stat(%q) of a removed snapshot: want NotFound, got %v", k, err)
		}
	}

	// Parents are listed and COMMITTED.
	for n, info := range listed {
		if info.Parent == "" {
			continue
		}
		pi, ok := listed[info.Parent]
		if !ok {
			p.add("%q has parent %q, which List does not show", n, info.Parent)
		} else if pi.Kind != snapshots.KindCommitted {
			p.add("%q has parent %q of kind %v, want COMMITTED", n, info.Parent, pi.Kind)
		}
	}

	// Mounts work for ACTIVE and VIEW, every path they name exists inside the root,
	// and data written into an active snapshot is still in its upper directory.
	for n, info := range listed {
		if info.Kind != snapshots.KindActive && info.Kind != snapshots.KindView {
			continue
		}
		cx, cancel := ctx()
		mounts, err := c.sn.Mounts(cx, n)
		cancel()
		if err != nil {
			p.add("Mounts(%q) (%v) after restart: %v", n, info.Kind, err)
			continue
		}
		p = append(p, c.mountPaths(n, mounts)...)
		if s := c.m.snaps[n]; s != nil && info.Kind == snapshots.KindActive && len(s.files) > 0 {
			upper, err := upperDir(mounts)
			if err != nil {
				p.add("Mounts(%q): %v", n, err)
				continue
			}
			p = append(p, compareTree(fmt.Sprintf("upper dir of active %q", n), upper, s.files, false)...)
		}
	}
	return p, listed
}

// mountPaths checks that every directory a mount refers to exists under the root.
func (c *checker) mountPaths(key string, mounts []mount.Mount) problems {
	var p problems
	if len(mounts) == 0 {
		p.add("Mounts(%q) returned no mounts", key)
	}
	root, _ := filepath.EvalSymlinks(c.root)
	checkDir := func(what, path string) {
		if path == "" {
			p.add("Mounts(%q): empty %s", key, what)
			return
		}
		fi, err := os.Stat(path)
		if err != nil {
			p.add("Mounts(%q): %s %s: %v", key, what, path, err)
			return
		}
		if !fi.IsDir() {
			p.add("Mounts(%q): %s %s is not a directory", key, what, path)
		}
		real, err := filepath.EvalSymlinks(path)
		if err == nil && !strings.HasPrefix(real, root+"/") {
			p.add("Mounts(%q): %s %s is outside the daemon root %s", key, what, path, root)
		}
	}
	for _, mt := range mounts {
		switch mt.Type {
		case "bind", "rbind":
			checkDir("bind source", mt.Source)
		case "overlay":
			for _, o := range mt.Options {
				kv := strings.SplitN(o, "=", 2)
				if len(kv) != 2 {
					continue
				}
				switch kv[0] {
				case "upperdir", "workdir":
					checkDir(kv[0], kv[1])
				case "lowerdir":
					for _, l := range strings.Split(kv[1], ":") {
						checkDir("lowerdir", l)
					}
				}
			}
		default:
			p.add("Mounts(%q): unexpected mount type %q (%+v)", key, mt.Type, mt)
		}
	}
	return p
}

var numericDir = regexp.MustCompile(`^[0-9]+$`)

// directories runs Cleanup and then checks that <root>/snapshots holds exactly one
// numeric directory per live snapshot and nothing else (no new-* temporaries).
func (c *checker) directories(live int) problems {
	var p problems
	cx, cancel := ctx()
	err := c.sn.(snapshots.Cleaner).Cleanup(cx)
	cancel()
	if err != nil {
		p.add("Cleanup after restart: %v", err)
		return p
	}
	dir := filepath.Join(c.root, "snapshots")
	entries, err := os.ReadDir(dir)
	if err != nil {
		p.add("read %s: %v", dir, err)
		return p
	}
	numeric := 0
	var stray []string
	for _, e := range entries {
		if e.IsDir() && numericDir.MatchString(e.Name()) {
			numeric++
			continue
		}
		stray = append(stray, e.Name())
	}
	if len(stray) > 0 {
		p.add("after Cleanup, %s holds entries that are not snapshot directories: %q", dir, stray)
	}
	if numeric != live {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		p.add("after Cleanup, %s holds %d numeric directories but List shows %d snapshots (entries: %v)",
			dir, numeric, live, names)
	}
	return p
}

// views mounts a fresh View of every committed snapshot and compares what it shows with
// the files written into its chain before each Commit. This is the durability check for
// data: a Commit acknowledged (or resolved as done) must not lose the layer's contents.
func (c *checker) views(dr *driver) problems {
	var p problems
	for _, n := range c.m.names() {
		if c.m.snaps[n].kind == snapshots.KindCommitted {
			p = append(p, c.viewOne(dr, n)...)
		}
	}
	return p
}

// viewOne checks the contents of one committed snapshot through a mounted View, then
// removes the View again.
func (c *checker) viewOne(dr *driver, name string) problems {
	var p problems
	key := fmt.Sprintf("check/%d/view of %s", dr.next(), name)
	mounts, err := dr.view(key, name)
	if err != nil {
		p.add("View(%q, parent %q) after restart: %v", key, name, err)
		return p
	}
	p = append(p, c.mountPaths(key, mounts)...)
	target, err := os.MkdirTemp(c.scratch, "view-")
	if err != nil {
		p.add("mkdtemp: %v", err)
		return p
	}
	if err := mount.All(mounts, target); err != nil {
		p.add("mount View of %q (%+v): %v", name, mounts, err)
	} else {
		p = append(p, compareTree(fmt.Sprintf("View of committed %q", name), target, c.m.expectedTree(name), true)...)
		if err := mount.UnmountAll(target, 0); err != nil {
			p.add("unmount %s: %v", target, err)
		}
	}
	os.Remove(target)
	if err := dr.remove(key); err != nil {
		p.add("Remove(%q): %v", key, err)
	}
	return p
}

// compareTree checks that dir holds the expected files with the expected contents. With
// exact, files other than the expected ones are reported too (directories are ignored).
func compareTree(what, dir string, want map[string]string, exact bool) problems {
	var p problems
	for rel, content := range want {
		got, err := os.ReadFile(filepath.Join(dir, rel))
		if err != nil {
			p.add("%s: %s: %v", what, rel, err)
		} else if string(got) != content {
			p.add("%s: %s holds %.40q, want %.40q", what, rel, got, content)
		}
	}
	if !exact {
		return p
	}
	_ = filepath.Walk(dir, func(path string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(dir, path)
		if _, ok := want[rel]; !ok {
			p.add("%s: unexpected file %s", what, rel)
		}
		return nil
	})
	return p
}
