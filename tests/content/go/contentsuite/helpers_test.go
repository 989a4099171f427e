package contentsuite

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	contentapi "github.com/containerd/containerd/api/services/content/v1"
	digest "github.com/opencontainers/go-digest"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// newDaemon starts a daemon on a fresh root that is stopped, and its log shown on failure, when
// the test ends.
func newDaemon(t *testing.T, env ...string) *daemon {
	t.Helper()
	dir := t.TempDir()
	d, err := startDaemon(t, dir, env...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			log, _ := os.ReadFile(d.logPath)
			t.Logf("daemon log %s:\n%s", d.logPath, log)
		}
		if err := d.stop(); err != nil {
			t.Errorf("stop daemon: %v", err)
		}
	})
	return d
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func randomBytes(t *testing.T, n int) ([]byte, digest.Digest) {
	t.Helper()
	b := make([]byte, n)
	if _, err := io.ReadFull(rand.Reader, b); err != nil {
		t.Fatal(err)
	}
	return b, digest.FromBytes(b)
}

func codeOf(err error) codes.Code { return status.Code(err) }

func expectCode(t *testing.T, what string, err error, want codes.Code) {
	t.Helper()
	if codeOf(err) != want {
		t.Fatalf("%s: got %v (%v), want %v", what, codeOf(err), err, want)
	}
	if err != nil && want != codes.OK {
		t.Logf("%s: %v as expected: %s", what, want, status.Convert(err).Message())
	}
}

// writer drives the raw Write stream in lock-step, as containerd's proxy does.
type writer struct {
	t      *testing.T
	stream contentapi.Content_WriteClient
	ref    string
}

func openWriter(ctx context.Context, t *testing.T, c contentapi.ContentClient, ref string, total int64,
	expected digest.Digest) (*writer, *contentapi.WriteContentResponse, error) {
	t.Helper()
	stream, err := c.Write(ctx)
	if err != nil {
		t.Fatalf("open Write stream: %v", err)
	}
	w := &writer{t: t, stream: stream, ref: ref}
	resp, err := w.send(&contentapi.WriteContentRequest{Action: contentapi.WriteActionStat, Ref: ref,
		Total: total, Expected: expected})
	return w, resp, err
}

func (w *writer) send(req *contentapi.WriteContentRequest) (*contentapi.WriteContentResponse, error) {
	if err := w.stream.Send(req); err != nil {
		// The server ended the stream; its status comes from Recv.
		if err != io.EOF {
			return nil, err
		}
	}
	return w.stream.Recv()
}

func (w *writer) write(offset int64, data []byte, chunk int) (int64, error) {
	for len(data) > 0 {
		n := chunk
		if n > len(data) {
			n = len(data)
		}
		resp, err := w.send(&contentapi.WriteContentRequest{Action: contentapi.WriteActionWrite,
			Offset: offset, Data: data[:n]})
		if err != nil {
			return offset, err
		}
		if resp.Offset != offset+int64(n) {
			w.t.Fatalf("WRITE of %d bytes at %d answered offset %d", n, offset, resp.Offset)
		}
		offset += int64(n)
		data = data[n:]
	}
	return offset, nil
}

func (w *writer) commit(offset, total int64, expected digest.Digest, labels map[string]string) (*contentapi.WriteContentResponse, error) {
	return w.send(&contentapi.WriteContentRequest{Action: contentapi.WriteActionCommit, Offset: offset,
		Total: total, Expected: expected, Labels: labels})
}

func (w *writer) close() {
	_ = w.stream.CloseSend()
	// Wait for the server to end the stream, so its lock on the ref is gone.
	for {
		if _, err := w.stream.Recv(); err != nil {
			return
		}
	}
}

// writeBlob writes and commits data under ref in one stream.
func writeBlob(ctx context.Context, t *testing.T, c contentapi.ContentClient, ref string, data []byte,
	labels map[string]string) digest.Digest {
	t.Helper()
	dgst := digest.FromBytes(data)
	w, _, err := openWriter(ctx, t, c, ref, int64(len(data)), "")
	if err != nil {
		t.Fatalf("open writer %q: %v", ref, err)
	}
	defer w.close()
	off, err := w.write(0, data, 1<<20)
	if err != nil {
		t.Fatalf("write %q: %v", ref, err)
	}
	resp, err := w.commit(off, int64(len(data)), dgst, labels)
	if err != nil {
		t.Fatalf("commit %q: %v", ref, err)
	}
	if resp.Digest != dgst {
		t.Fatalf("commit %q answered digest %s, want %s", ref, resp.Digest, dgst)
	}
	return dgst
}

func readBlob(ctx context.Context, t *testing.T, c contentapi.ContentClient, dgst digest.Digest) []byte {
	t.Helper()
	stream, err := c.Read(ctx, &contentapi.ReadContentRequest{Digest: dgst})
	if err != nil {
		t.Fatalf("read %s: %v", dgst, err)
	}
	var buf bytes.Buffer
	for {
		resp, err := stream.Recv()
		if err == io.EOF {
			return buf.Bytes()
		}
		if err != nil {
			t.Fatalf("read %s: %v", dgst, err)
		}
		if resp.Offset != int64(buf.Len()) {
			t.Fatalf("read %s: chunk at offset %d, expected %d", dgst, resp.Offset, buf.Len())
		}
		buf.Write(resp.Data)
	}
}

// treeOf lists every path under root (relative, directories marked with a trailing '/'),
// leaving out SQLite's files, whose contents change with any write.
func treeOf(t *testing.T, root string) []string {
	t.Helper()
	var paths []string
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." || strings.HasPrefix(filepath.Base(p), "meta.db") {
			return nil
		}
		if fi.IsDir() {
			rel += "/"
		}
		paths = append(paths, rel)
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", root, err)
	}
	sort.Strings(paths)
	return paths
}

func expectSameTree(t *testing.T, what string, before, after []string) {
	t.Helper()
	if strings.Join(before, "\n") != strings.Join(after, "\n") {
		t.Fatalf("%s left something behind under the root:\nbefore:\n  %s\nafter:\n  %s", what,
			strings.Join(before, "\n  "), strings.Join(after, "\n  "))
	}
}

func expectNoIngests(ctx context.Context, t *testing.T, c contentapi.ContentClient) {
	t.Helper()
	resp, err := c.ListStatuses(ctx, &contentapi.ListStatusesRequest{})
	if err != nil {
		t.Fatalf("ListStatuses: %v", err)
	}
	if len(resp.Statuses) != 0 {
		t.Fatalf("ingests left behind: %+v", resp.Statuses)
	}
}

func expectBlobs(ctx context.Context, t *testing.T, c contentapi.ContentClient, want ...digest.Digest) {
	t.Helper()
	stream, err := c.List(ctx, &contentapi.ListContentRequest{})
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	var got []string
	for {
		resp, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		for _, info := range resp.Info {
			got = append(got, info.Digest.String())
		}
	}
	var wantS []string
	for _, d := range want {
		wantS = append(wantS, d.String())
	}
	sort.Strings(got)
	sort.Strings(wantS)
	if strings.Join(got, ",") != strings.Join(wantS, ",") {
		t.Fatalf("blobs in the store: %v, want %v", got, wantS)
	}
}

func digestOf(b []byte) string { return digest.FromBytes(b).String() }
