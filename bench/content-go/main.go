// content-go measures snapimport's content service through containerd's own proxy client
// (content/proxy of containerd 1.6.20, as containerd links it), the way containerd drives it in a
// pull:
//
//   - Write: proxy.NewContentStore(...).Writer with the blob's size and digest, then content.Copy,
//     which sends 1 MiB WRITEs in lock-step (one request, one answer) and COMMITs with the
//     expected digest. The figure includes the COMMIT (digest check, fsync, rename).
//   - Read: the ReaderAt of the same store, read from start to end in 32 KiB ReadAt calls through
//     an io.SectionReader, as containerd's apply does (content.NewReader and the 32 KiB buffers of
//     its decompression and tar reading). Every ReadAt is one Read server-streaming RPC.
//
// The blob's bytes are pseudo-random (incompressible, not repeating) and are checked on the way
// back; the checking is kept off the Read clock. The connection is dialled with the options
// containerd 1.6 uses for a proxy plugin (services/server.proxyClients.getClient).
//
//	content-go -address SOCKET [-size-mib 1024] [-read-kib 32] [-daemon-pid PID] [-keep]
//	           [-rounds N] [-phases write,read] [-seed S]
//
// -rounds N writes, reads and deletes the blob N times over one connection. On a VM whose free
// memory goes back to the host (virtio-balloon free page reporting), the first round's page-cache
// pages are fresh from the host and cost a host fault each; later rounds reuse the pages the
// previous round's blob gave back (see bench/README.md). -phases read with -seed and -keep reads
// a blob an earlier run left, e.g. to profile the Read path alone.
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	contentapi "github.com/containerd/containerd/api/services/content/v1"
	"github.com/containerd/containerd/content"
	"github.com/containerd/containerd/content/proxy"
	"github.com/containerd/containerd/defaults"
	"github.com/containerd/containerd/namespaces"
	"github.com/containerd/containerd/pkg/dialer"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
)

// blobReader yields the blob's bytes: xorshift64* keyed by the offset of each 8-byte word (the
// same sequence as bench/ContentBench.cpp), so any range can be produced and checked on its own.
type blobReader struct {
	seed   uint64
	offset int64
	size   int64
}

func word(seed uint64, index uint64) uint64 {
	x := index*0x9E3779B97F4A7C15 ^ seed
	x ^= x >> 12
	x ^= x << 25
	x ^= x >> 27
	return x * 0x2545F4914F6CDD1D
}

// fill writes the blob's bytes at offset into p; offset and len(p) must be multiples of 8.
func fill(p []byte, offset int64, seed uint64) {
	base := uint64(offset) / 8
	for i := 0; i+8 <= len(p); i += 8 {
		binary.LittleEndian.PutUint64(p[i:], word(seed, base+uint64(i/8)))
	}
}

func (r *blobReader) Read(p []byte) (int, error) {
	if r.offset >= r.size {
		return 0, io.EOF
	}
	n := len(p) &^ 7
	if int64(n) > r.size-r.offset {
		n = int(r.size - r.offset)
	}
	if n == 0 {
		return 0, io.ErrShortBuffer
	}
	fill(p[:n], r.offset, r.seed)
	r.offset += int64(n)
	return n, nil
}

// cpuSeconds is the user+system CPU time of a process (pid 0: this one) so far, 0 if unknown.
func cpuSeconds(pid int) float64 {
	path := "/proc/self/stat"
	if pid > 0 {
		path = "/proc/" + strconv.Itoa(pid) + "/stat"
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	// After the name: state(3) ppid(4) ... utime(14) stime(15); f[0] is field 3.
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (u + st) / 100 // USER_HZ is 100 on Linux
}

func die(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "content-go: "+format+"\n", args...)
	os.Exit(1)
}

func mibps(bytes int64, d time.Duration) float64 {
	return float64(bytes) / (1 << 20) / d.Seconds()
}

func main() {
	address := flag.String("address", "", "snapimport's socket")
	sizeMiB := flag.Int64("size-mib", 1024, "blob size in MiB")
	readKiB := flag.Int("read-kib", 32, "size of each ReadAt call in KiB")
	daemonPid := flag.Int("daemon-pid", 0, "the daemon's pid, for its CPU seconds per GiB")
	keep := flag.Bool("keep", false, "keep the blob (it is deleted otherwise)")
	seedFlag := flag.Uint64("seed", 0, "seed of the blob's bytes (default: the time); with -keep "+
		"and -phases read, a later run reads the blob an earlier one wrote, e.g. under perf")
	phases := flag.String("phases", "write,read", "which of write and read to run")
	rounds := flag.Int("rounds", 1, "write, read and delete the blob this many times")
	flag.Parse()
	if *address == "" || *sizeMiB <= 0 || *readKiB <= 0 {
		flag.Usage()
		os.Exit(2)
	}
	size := *sizeMiB << 20
	seed := *seedFlag
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	doWrite := strings.Contains(*phases, "write")
	doRead := strings.Contains(*phases, "read")

	// The digest is known beforehand in a pull (it is in the manifest); compute it off the clock.
	h := sha256.New()
	if _, err := io.Copy(h, &blobReader{seed: seed, size: size}); err != nil {
		die("hash the blob: %v", err)
	}
	dgst := digest.NewDigest(digest.SHA256, h)
	desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: dgst, Size: size}

	// As containerd 1.6 dials a proxy plugin.
	backoffConfig := backoff.DefaultConfig
	backoffConfig.MaxDelay = 3 * time.Second
	conn, err := grpc.Dial(dialer.DialAddress(*address),
		grpc.WithInsecure(),
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: backoffConfig}),
		grpc.WithContextDialer(dialer.ContextDialer),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(defaults.DefaultMaxRecvMsgSize)),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(defaults.DefaultMaxSendMsgSize)))
	if err != nil {
		die("dial %s: %v", *address, err)
	}
	defer conn.Close()
	cs := proxy.NewContentStore(contentapi.NewContentClient(conn))
	ctx := namespaces.WithNamespace(context.Background(), "content-go")
	gib := float64(size) / (1 << 30)
	fmt.Printf("blob      %d MiB, %s (containerd 1.6 content/proxy client)\n", *sizeMiB, dgst)
	for round := 1; round <= *rounds; round++ {
		if *rounds > 1 {
			fmt.Printf("round %d\n", round)
		}
		ref := fmt.Sprintf("content-go/%d/%d", seed, round)

		// --- Write, as containerd's fetch does (remotes.fetch: content.OpenWriter + content.Copy) ---
		if doWrite {
			c0, d0 := cpuSeconds(0), cpuSeconds(*daemonPid)
			start := time.Now()
			w, err := content.OpenWriter(ctx, cs, content.WithRef(ref), content.WithDescriptor(desc))
			if err != nil {
				die("open writer %s: %v", ref, err)
			}
			if err := content.Copy(ctx, w, &blobReader{seed: seed, size: size}, size, dgst); err != nil {
				die("write %s: %v", dgst, err)
			}
			writeTime := time.Since(start)
			w.Close()
			c1, d1 := cpuSeconds(0), cpuSeconds(*daemonPid)
			fmt.Printf("write     %8.1f MiB/s  (%.2f s: 1 MiB lock-step WRITEs by content.Copy, and the COMMIT)\n",
				mibps(size, writeTime), writeTime.Seconds())
			if *daemonPid > 0 {
				fmt.Printf("          CPU per GiB: daemon %.2f s, client %.2f s\n", (d1-d0)/gib, (c1-c0)/gib)
			}
		}

		// --- Read, as containerd's apply does (content.NewReader over the ReaderAt, 32 KiB reads) ---
		if doRead {
			c0, d0 := cpuSeconds(0), cpuSeconds(*daemonPid)
			ra, err := cs.ReaderAt(ctx, desc)
			if err != nil {
				die("reader for %s: %v", dgst, err)
			}
			sr := io.NewSectionReader(ra, 0, ra.Size())
			buf := make([]byte, *readKiB<<10)
			expect := make([]byte, len(buf))
			var readTime, verifyTime time.Duration
			var calls, got int64
			for got < size {
				t0 := time.Now()
				n, err := io.ReadFull(sr, buf)
				readTime += time.Since(t0)
				calls++
				if err != nil && !(err == io.ErrUnexpectedEOF && got+int64(n) == size) {
					die("read %s at %d: %v", dgst, got, err)
				}
				v0 := time.Now()
				fill(expect[:n], got, seed)
				if !bytes.Equal(buf[:n], expect[:n]) {
					die("read %s: the %d bytes at %d differ from what was written", dgst, n, got)
				}
				verifyTime += time.Since(v0)
				got += int64(n)
			}
			ra.Close()
			c1, d1 := cpuSeconds(0), cpuSeconds(*daemonPid)
			fmt.Printf("read      %8.1f MiB/s  (%.2f s: %d ReadAt calls of %d KiB, %.1f µs per Read RPC; "+
				"checking the bytes took %.2f s more)\n", mibps(size, readTime), readTime.Seconds(), calls,
				*readKiB, float64(readTime.Microseconds())/float64(calls), verifyTime.Seconds())
			if *daemonPid > 0 {
				fmt.Printf("          CPU per GiB: daemon %.2f s, client %.2f s (without the checking)\n",
					(d1-d0)/gib, (c1-c0-verifyTime.Seconds())/gib)
			}
		}

		// Between rounds the blob goes only if the next round writes it again.
		if (round < *rounds && doWrite) || (round == *rounds && !*keep) {
			if err := cs.Delete(ctx, dgst); err != nil {
				die("delete %s: %v", dgst, err)
			}
		}
	}
}
