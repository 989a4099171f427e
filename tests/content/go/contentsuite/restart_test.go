// Ingests survive the daemon dying: kill -9 mid-write, restart, and the ingest resumes from the
// bytes already on disk; a crash inside a commit leaves either the ingest or the blob, never both
// or neither.
package contentsuite

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	contentapi "github.com/containerd/containerd/api/services/content/v1"
	"google.golang.org/grpc/codes"
)

func TestRestartResume(t *testing.T) {
	d := newDaemon(t)
	ctx := testContext(t)
	const ref = "default/7/layer-sha256:restart-resume"
	data, dgst := randomBytes(t, 24<<20+12345)
	written := int64(len(data) * 2 / 5)

	w, _, err := openWriter(ctx, t, d.client, ref, int64(len(data)), "")
	expectCode(t, "open writer", err, codes.OK)
	off, err := w.write(0, data[:written], 1<<20)
	expectCode(t, "write the first part", err, codes.OK)
	if off != written {
		t.Fatalf("wrote up to %d, want %d", off, written)
	}
	before, err := d.client.Status(ctx, &contentapi.StatusRequest{Ref: ref})
	expectCode(t, "Status before the crash", err, codes.OK)

	// kill -9 with the stream still open, then start again on the same root.
	d.kill()
	bin := snapimportBin(t)
	if err := d.start(bin); err != nil {
		t.Fatal(err)
	}
	ctx = testContext(t)

	st, err := d.client.Status(ctx, &contentapi.StatusRequest{Ref: ref})
	expectCode(t, "Status after restart", err, codes.OK)
	if st.Status.Offset != written || st.Status.Total != int64(len(data)) || st.Status.Ref != ref {
		t.Fatalf("Status after restart: ref %q offset %d total %d, want %q %d %d", st.Status.Ref,
			st.Status.Offset, st.Status.Total, ref, written, len(data))
	}
	if !st.Status.StartedAt.Equal(before.Status.StartedAt) {
		t.Fatalf("started_at changed across the restart: %v, was %v", st.Status.StartedAt, before.Status.StartedAt)
	}

	w, resp, err := openWriter(ctx, t, d.client, ref, int64(len(data)), "")
	expectCode(t, "reopen writer", err, codes.OK)
	if resp.Offset != written {
		t.Fatalf("STAT after restart says offset %d, want %d", resp.Offset, written)
	}
	if resp.Digest.String() != digestOf(data[:written]) {
		t.Fatalf("STAT after restart says digest %s, want the digest of the first %d bytes", resp.Digest, written)
	}
	off, err = w.write(written, data[written:], 1<<20)
	expectCode(t, "write the rest", err, codes.OK)
	cr, err := w.commit(off, int64(len(data)), dgst, nil)
	expectCode(t, "commit", err, codes.OK)
	w.close()
	if cr.Digest != dgst || cr.Offset != int64(len(data)) {
		t.Fatalf("commit answered %s at %d, want %s at %d", cr.Digest, cr.Offset, dgst, len(data))
	}
	if got := readBlob(ctx, t, d.client, dgst); !bytes.Equal(got, data) {
		t.Fatalf("blob read back (%d bytes) differs from what was written (%d bytes)", len(got), len(data))
	}
	onDisk, err := os.ReadFile(filepath.Join(d.root, "content", "blobs", "sha256", dgst.Hex()))
	if err != nil || !bytes.Equal(onDisk, data) {
		t.Fatalf("blob file differs from what was written (err %v)", err)
	}
	expectNoIngests(ctx, t, d.client)
	if entries, _ := os.ReadDir(filepath.Join(d.root, "content", "ingest")); len(entries) != 0 {
		t.Fatalf("%d entries left in content/ingest", len(entries))
	}
}

// The daemon dies at each step of a commit. After a restart the outcome is one of the two
// whole states: the ingest is still there (and commits now), or the blob is there (and the
// ingest is gone). The files and the records agree either way.
func TestRestartCrashDuringCommit(t *testing.T) {
	for _, point := range []string{"content.commit.synced", "content.commit.recorded", "content.commit.renamed"} {
		t.Run(point, func(t *testing.T) {
			d := newDaemon(t, "SNAPIMPORT_CRASH_AT="+point)
			ctx := testContext(t)
			const ref = "default/9/layer-sha256:crash"
			data, dgst := randomBytes(t, 3<<20)
			labels := map[string]string{"containerd.io/gc.root": "now"}

			w, _, err := openWriter(ctx, t, d.client, ref, int64(len(data)), "")
			expectCode(t, "open writer", err, codes.OK)
			off, err := w.write(0, data, 1<<20)
			expectCode(t, "write", err, codes.OK)
			_, err = w.commit(off, int64(len(data)), dgst, labels)
			if err == nil {
				t.Fatalf("commit succeeded; the daemon should have died at %s", point)
			}
			d.kill()
			d.env = nil
			if err := d.start(snapimportBin(t)); err != nil {
				t.Fatal(err)
			}
			ctx = testContext(t)

			_, infoErr := d.client.Info(ctx, &contentapi.InfoRequest{Digest: dgst})
			st, statusErr := d.client.Status(ctx, &contentapi.StatusRequest{Ref: ref})
			switch {
			case infoErr == nil && codeOf(statusErr) == codes.NotFound:
				t.Logf("after a crash at %s the blob is committed", point)
			case codeOf(infoErr) == codes.NotFound && statusErr == nil:
				t.Logf("after a crash at %s the ingest is intact at offset %d", point, st.Status.Offset)
				if st.Status.Offset != int64(len(data)) {
					t.Fatalf("ingest offset %d, want %d", st.Status.Offset, len(data))
				}
				w, _, err := openWriter(ctx, t, d.client, ref, int64(len(data)), "")
				expectCode(t, "reopen writer", err, codes.OK)
				_, err = w.commit(int64(len(data)), int64(len(data)), dgst, labels)
				expectCode(t, "commit after restart", err, codes.OK)
				w.close()
			default:
				t.Fatalf("after a crash at %s: Info %v, Status %v; want exactly one of blob and ingest", point,
					infoErr, statusErr)
			}
			if got := readBlob(ctx, t, d.client, dgst); !bytes.Equal(got, data) {
				t.Fatal("blob differs from what was written")
			}
			info, err := d.client.Info(ctx, &contentapi.InfoRequest{Digest: dgst})
			expectCode(t, "Info", err, codes.OK)
			if len(info.Info.Labels) != 1 || info.Info.Labels["containerd.io/gc.root"] != "now" {
				t.Fatalf("labels after the crash: %v, want %v", info.Info.Labels, labels)
			}
			expectNoIngests(ctx, t, d.client)
			expectBlobs(ctx, t, d.client, dgst)
			if entries, _ := os.ReadDir(filepath.Join(d.root, "content", "ingest")); len(entries) != 0 {
				t.Fatalf("%d entries left in content/ingest", len(entries))
			}
			// The blob can be deleted, and with it every trace.
			_, err = d.client.Delete(ctx, &contentapi.DeleteContentRequest{Digest: dgst})
			expectCode(t, "Delete", err, codes.OK)
			expectBlobs(ctx, t, d.client)
		})
	}
}
