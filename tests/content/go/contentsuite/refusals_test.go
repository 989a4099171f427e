// Requests the content service must refuse, each with the code containerd expects and without
// leaving anything behind: no blob, no stray file, and no ingest once the refused one is aborted.
package contentsuite

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	contentapi "github.com/containerd/containerd/api/services/content/v1"
	protobuftypes "github.com/gogo/protobuf/types"
	digest "github.com/opencontainers/go-digest"
	"google.golang.org/grpc/codes"
)

// A commit whose digest or size does not match the bytes is refused with FailedPrecondition (as
// containerd's local store does). The bytes stay resumable, as containerd's conformance suite
// requires; nothing reaches the blob store, and Abort removes every trace.
func TestRefuseCommitMismatch(t *testing.T) {
	d := newDaemon(t)
	ctx := testContext(t)
	c := d.client
	before := treeOf(t, d.root)
	data, dgst := randomBytes(t, 300000)
	_, other := randomBytes(t, 10)

	for _, tc := range []struct {
		name     string
		total    int64
		expected digest.Digest
	}{
		{"wrong digest", int64(len(data)), other},
		{"wrong size (larger)", int64(len(data)) + 1, dgst},
		{"wrong size (smaller)", int64(len(data)) - 1, ""},
	} {
		ref := "refuse/" + strings.ReplaceAll(tc.name, " ", "-")
		w, _, err := openWriter(ctx, t, c, ref, 0, "")
		expectCode(t, tc.name+": open", err, codes.OK)
		off, err := w.write(0, data, 64<<10)
		expectCode(t, tc.name+": write", err, codes.OK)
		_, err = w.commit(off, tc.total, tc.expected, map[string]string{"k": "v"})
		expectCode(t, tc.name+": commit", err, codes.FailedPrecondition)
		w.close()

		for _, x := range []digest.Digest{dgst, other} {
			_, err := c.Info(ctx, &contentapi.InfoRequest{Digest: x})
			expectCode(t, tc.name+": Info "+x.String(), err, codes.NotFound)
		}
		expectBlobs(ctx, t, c)
		st, err := c.Status(ctx, &contentapi.StatusRequest{Ref: ref})
		expectCode(t, tc.name+": Status", err, codes.OK)
		if st.Status.Offset != int64(len(data)) {
			t.Fatalf("%s: the refused ingest kept %d bytes, want %d", tc.name, st.Status.Offset, len(data))
		}
		_, err = c.Abort(ctx, &contentapi.AbortRequest{Ref: ref})
		expectCode(t, tc.name+": Abort", err, codes.OK)
		expectNoIngests(ctx, t, c)
		expectSameTree(t, tc.name, before, treeOf(t, d.root))
	}
}

// A second writer on a ref that is being written gets Unavailable; the first is unaffected.
func TestRefuseSecondWriter(t *testing.T) {
	d := newDaemon(t)
	ctx := testContext(t)
	c := d.client
	before := treeOf(t, d.root)
	data, dgst := randomBytes(t, 100000)
	const ref = "default/1/layer-sha256:second-writer"

	first, _, err := openWriter(ctx, t, c, ref, int64(len(data)), "")
	expectCode(t, "first writer", err, codes.OK)
	off, err := first.write(0, data[:50000], 16<<10)
	expectCode(t, "first writer: write", err, codes.OK)

	start := time.Now()
	second, _, err := openWriter(ctx, t, c, ref, int64(len(data)), "")
	expectCode(t, "second writer", err, codes.Unavailable)
	second.close()
	t.Logf("second writer refused after %v", time.Since(start))

	// Abort while the first writer holds the ref is refused the same way.
	_, err = c.Abort(ctx, &contentapi.AbortRequest{Ref: ref})
	expectCode(t, "Abort of a ref being written", err, codes.Unavailable)

	off, err = first.write(off, data[50000:], 16<<10)
	expectCode(t, "first writer: rest", err, codes.OK)
	_, err = first.commit(off, int64(len(data)), dgst, nil)
	expectCode(t, "first writer: commit", err, codes.OK)
	first.close()
	expectBlobs(ctx, t, c, dgst)
	expectNoIngests(ctx, t, c)

	// The ref is free again once the first writer is done.
	third, _, err := openWriter(ctx, t, c, ref, 0, "")
	expectCode(t, "writer after the first finished", err, codes.OK)
	third.close()
	_, err = c.Abort(ctx, &contentapi.AbortRequest{Ref: ref})
	expectCode(t, "Abort", err, codes.OK)
	_, err = c.Delete(ctx, &contentapi.DeleteContentRequest{Digest: dgst})
	expectCode(t, "Delete", err, codes.OK)
	expectNoIngests(ctx, t, c)
	expectSameTree(t, "second writer", before, treeOf(t, d.root))
}

// Reading from past the end gives OutOfRange; reading exactly at the end gives nothing.
func TestRefuseReadBeyondSize(t *testing.T) {
	d := newDaemon(t)
	ctx := testContext(t)
	c := d.client
	data, _ := randomBytes(t, 1000)
	dgst := writeBlob(ctx, t, c, "read-beyond", data, nil)
	before := treeOf(t, d.root)

	read := func(offset, size int64) ([]byte, error) {
		stream, err := c.Read(ctx, &contentapi.ReadContentRequest{Digest: dgst, Offset: offset, Size_: size})
		if err != nil {
			return nil, err
		}
		var out []byte
		for {
			resp, err := stream.Recv()
			if err == io.EOF {
				return out, nil
			}
			if err != nil {
				return out, err
			}
			out = append(out, resp.Data...)
		}
	}
	for _, off := range []int64{1001, 1 << 40} {
		_, err := read(off, 0)
		expectCode(t, "Read at offset past the end", err, codes.OutOfRange)
		_, err = read(off, 10)
		expectCode(t, "Read with size at offset past the end", err, codes.OutOfRange)
	}
	got, err := read(1000, 0)
	expectCode(t, "Read at the end", err, codes.OK)
	if len(got) != 0 {
		t.Fatalf("Read at the end returned %d bytes", len(got))
	}
	// A size running past the end is cut to what there is, as containerd does.
	got, err = read(990, 100)
	expectCode(t, "Read across the end", err, codes.OK)
	if string(got) != string(data[990:]) {
		t.Fatalf("Read across the end returned %d bytes, want the last 10", len(got))
	}
	got, err = read(-5, 3)
	expectCode(t, "Read at a negative offset", err, codes.OK)
	if string(got) != string(data[:3]) {
		t.Fatalf("Read at a negative offset returned %q, want the first 3 bytes", got)
	}
	expectSameTree(t, "Read", before, treeOf(t, d.root))
}

// Every digest that is not "sha256:" and 64 lowercase hex digits is refused with InvalidArgument
// by every RPC that takes one, before it can touch the disk.
func TestRefuseMalformedDigests(t *testing.T) {
	d := newDaemon(t)
	ctx := testContext(t)
	c := d.client
	data, _ := randomBytes(t, 100)
	good := writeBlob(ctx, t, c, "malformed/good", data, nil)
	before := treeOf(t, d.root)
	hex := good.Hex()

	bad := []string{
		"",
		"sha256",
		"sha256:",
		"sha256:" + hex[:63],
		"sha256:" + hex + "0",
		"sha256:" + strings.ToUpper(hex),
		"SHA256:" + hex,
		"sha512:" + hex + hex,
		"md5:" + hex[:32],
		hex,
		"sha256:" + hex[:60] + "/../",
		"sha256:../../../../../../etc/passwd" + strings.Repeat("0", 29),
		"sha256:" + hex[:63] + "\x00",
		"sha256:" + hex[:63] + "g",
		" sha256:" + hex,
	}
	for _, s := range bad {
		dg := digest.Digest(s)
		what := func(rpc string) string { return rpc + " " + strings.ReplaceAll(s, "\x00", `\x00`) }
		_, err := c.Info(ctx, &contentapi.InfoRequest{Digest: dg})
		expectCode(t, what("Info"), err, codes.InvalidArgument)
		_, err = c.Delete(ctx, &contentapi.DeleteContentRequest{Digest: dg})
		expectCode(t, what("Delete"), err, codes.InvalidArgument)
		_, err = c.Update(ctx, &contentapi.UpdateRequest{
			Info:       contentapi.Info{Digest: dg, Labels: map[string]string{"a": "b"}},
			UpdateMask: &protobuftypes.FieldMask{Paths: []string{"labels"}}})
		expectCode(t, what("Update"), err, codes.InvalidArgument)
		stream, err := c.Read(ctx, &contentapi.ReadContentRequest{Digest: dg})
		if err == nil {
			_, err = stream.Recv()
		}
		expectCode(t, what("Read"), err, codes.InvalidArgument)
		if s == "" {
			continue // an empty expected digest means "not known yet" in Write
		}
		w, _, err := openWriter(ctx, t, c, "malformed/expected", 100, dg)
		expectCode(t, what("Write STAT with expected"), err, codes.InvalidArgument)
		w.close()
		w, _, err = openWriter(ctx, t, c, "malformed/commit", 100, "")
		expectCode(t, what("Write STAT"), err, codes.OK)
		off, err := w.write(0, data, 100)
		expectCode(t, what("Write WRITE"), err, codes.OK)
		_, err = w.commit(off, 100, dg, nil)
		expectCode(t, what("Write COMMIT with expected"), err, codes.InvalidArgument)
		w.close()
		_, err = c.Abort(ctx, &contentapi.AbortRequest{Ref: "malformed/commit"})
		expectCode(t, what("Abort after refused COMMIT"), err, codes.OK)
	}
	expectBlobs(ctx, t, c, good)
	expectNoIngests(ctx, t, c)
	expectSameTree(t, "malformed digests", before, treeOf(t, d.root))
}

// Refs are opaque: "../", absolute paths and the like name ingests like any other ref and never
// reach a path. Every ingest lives in content/ingest/<sha256 of the ref>.
func TestRefuseRefEscape(t *testing.T) {
	d := newDaemon(t)
	ctx := testContext(t)
	c := d.client
	outside := filepath.Dir(d.root)
	before := treeOf(t, d.root)
	beforeOutside := treeOf(t, outside)

	refs := []string{
		"../escape",
		"../../escape",
		"../../../../../../../../tmp/snapimport-escape",
		"/tmp/snapimport-escape-abs",
		"..",
		".",
		"a/../../../b",
		"content/../../meta.db",
		"ingest/../blobs/sha256/x",
		strings.Repeat("../", 200) + "etc/passwd",
	}
	data, dgst := randomBytes(t, 5000)
	for _, ref := range refs {
		w, _, err := openWriter(ctx, t, c, ref, int64(len(data)), "")
		expectCode(t, "open "+ref, err, codes.OK)
		_, err = w.write(0, data[:1000], 1000)
		expectCode(t, "write "+ref, err, codes.OK)
		w.close()
	}
	// Only hex-named directories under content/ingest, nothing new anywhere else.
	ingestRoot := filepath.Join(d.root, "content", "ingest")
	entries, err := os.ReadDir(ingestRoot)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(refs) {
		t.Fatalf("%d ingest directories for %d refs", len(entries), len(refs))
	}
	for _, e := range entries {
		if len(e.Name()) != 64 || strings.Trim(e.Name(), "0123456789abcdef") != "" || !e.IsDir() {
			t.Fatalf("unexpected entry %q in %s", e.Name(), ingestRoot)
		}
	}
	var grown []string
	for _, p := range treeOf(t, d.root) {
		if p == "content/ingest/" || !strings.HasPrefix(p, "content/ingest/") {
			grown = append(grown, p)
		}
	}
	expectSameTree(t, "refs with ../ (outside content/ingest)", before, grown)
	if _, err := os.Lstat("/tmp/snapimport-escape"); err == nil {
		t.Fatal("/tmp/snapimport-escape exists")
	}
	if _, err := os.Lstat("/tmp/snapimport-escape-abs"); err == nil {
		t.Fatal("/tmp/snapimport-escape-abs exists")
	}

	// Each ref reports itself, resumes its own bytes, and aborts only itself.
	resp, err := c.ListStatuses(ctx, &contentapi.ListStatusesRequest{})
	expectCode(t, "ListStatuses", err, codes.OK)
	if len(resp.Statuses) != len(refs) {
		t.Fatalf("ListStatuses shows %d ingests, want %d", len(resp.Statuses), len(refs))
	}
	for _, ref := range refs {
		st, err := c.Status(ctx, &contentapi.StatusRequest{Ref: ref})
		expectCode(t, "Status "+ref, err, codes.OK)
		if st.Status.Ref != ref || st.Status.Offset != 1000 {
			t.Fatalf("Status %q = ref %q offset %d", ref, st.Status.Ref, st.Status.Offset)
		}
	}
	// A filter on ref finds exactly that one.
	fr, err := c.ListStatuses(ctx, &contentapi.ListStatusesRequest{Filters: []string{`ref=="../escape"`}})
	expectCode(t, "ListStatuses by ref", err, codes.OK)
	if len(fr.Statuses) != 1 || fr.Statuses[0].Ref != "../escape" {
		t.Fatalf("ListStatuses ref==\"../escape\" gave %+v", fr.Statuses)
	}
	w, st, err := openWriter(ctx, t, c, refs[2], int64(len(data)), "")
	expectCode(t, "resume "+refs[2], err, codes.OK)
	if st.Offset != 1000 {
		t.Fatalf("resumed %q at %d, want 1000", refs[2], st.Offset)
	}
	off, err := w.write(1000, data[1000:], 4096)
	expectCode(t, "finish "+refs[2], err, codes.OK)
	_, err = w.commit(off, int64(len(data)), dgst, nil)
	expectCode(t, "commit "+refs[2], err, codes.OK)
	w.close()
	if got := readBlob(ctx, t, c, dgst); string(got) != string(data) {
		t.Fatal("blob committed through an escaping ref differs from what was written")
	}
	for i, ref := range refs {
		if i == 2 {
			_, err := c.Abort(ctx, &contentapi.AbortRequest{Ref: ref})
			expectCode(t, "Abort of a committed ref", err, codes.NotFound)
			continue
		}
		_, err := c.Abort(ctx, &contentapi.AbortRequest{Ref: ref})
		expectCode(t, "Abort "+ref, err, codes.OK)
	}
	// Refs with control characters (a NUL would truncate a C string) are refused outright.
	for _, ref := range []string{"a\x00b", "line\nbreak"} {
		w, _, err := openWriter(ctx, t, c, ref, 0, "")
		expectCode(t, "ref with a control character", err, codes.InvalidArgument)
		w.close()
	}
	_, err = c.Delete(ctx, &contentapi.DeleteContentRequest{Digest: dgst})
	expectCode(t, "Delete", err, codes.OK)
	expectNoIngests(ctx, t, c)
	expectSameTree(t, "refs with ../", before, treeOf(t, d.root))
	afterOutside := treeOf(t, outside)
	var outsideNew []string
	for _, p := range afterOutside {
		if !strings.HasPrefix(p, filepath.Base(d.root)+"/") && p != "daemon.log" && p != "snapimport.sock" {
			outsideNew = append(outsideNew, p)
		}
	}
	var outsideOld []string
	for _, p := range beforeOutside {
		if !strings.HasPrefix(p, filepath.Base(d.root)+"/") && p != "daemon.log" && p != "snapimport.sock" {
			outsideOld = append(outsideOld, p)
		}
	}
	expectSameTree(t, "refs with ../ (next to the root)", outsideOld, outsideNew)
}
