// Package harness starts and stops `snapimport serve` for the conformance tests and
// dials its unix socket. Every test drives the real daemon binary over gRPC, exactly as
// containerd's proxy plugin would, so nothing here reaches into the daemon's internals.
package harness

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
)

// SnapshotterName is the proxy plugin name containerd would use; the daemon may ignore it.
const SnapshotterName = "snapimport"

// Timeouts are generous because ctest may run the three suites side by side on 2 cores.
const (
	readyTimeout = 30 * time.Second
	stopTimeout  = 20 * time.Second
)

// Bin returns the daemon binary named by SNAPIMPORT_BIN (set by ctest).
func Bin() (string, error) {
	bin := os.Getenv("SNAPIMPORT_BIN")
	if bin == "" {
		return "", errors.New("SNAPIMPORT_BIN is not set; it must name the snapimport daemon binary")
	}
	if _, err := os.Stat(bin); err != nil {
		return "", fmt.Errorf("SNAPIMPORT_BIN=%s: %w", bin, err)
	}
	return bin, nil
}

// Options describe one daemon process.
type Options struct {
	Root    string   // --root
	Socket  string   // --address
	LogPath string   // stderr of the daemon goes here (appended, so restarts share one file)
	Env     []string // extra environment, e.g. SNAPIMPORT_CRASH_AT=...
	Dir     string   // working directory; defaults to Root's parent
}

// Daemon is one running `snapimport serve`.
type Daemon struct {
	Options
	cmd      *exec.Cmd
	logFile  *os.File
	done     chan struct{}
	waitErr  error
	state    *os.ProcessState
	stopOnce sync.Once
	stopErr  error
}

// Start launches the daemon and waits until its socket accepts connections.
func Start(opts Options) (*Daemon, error) {
	bin, err := Bin()
	if err != nil {
		return nil, err
	}
	if opts.Dir == "" {
		opts.Dir = filepath.Dir(opts.Root)
	}
	if err := os.MkdirAll(filepath.Dir(opts.Socket), 0o700); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(opts.LogPath), 0o755); err != nil {
		return nil, err
	}
	logFile, err := os.OpenFile(opts.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(logFile, "### harness: starting %s serve --root %s --address %s env=%q\n",
		bin, opts.Root, opts.Socket, opts.Env)

	cmd := exec.Command(bin, "serve", "--root", opts.Root, "--address", opts.Socket)
	cmd.Dir = opts.Dir
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	// Drop any crash-injection setting inherited from our own environment: only the
	// caller decides whether this particular daemon may crash itself.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SNAPIMPORT_CRASH_AT=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, opts.Env...)
	// Own process group, so a Ctrl-C on the test does not race our own SIGTERM handling.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	d := &Daemon{Options: opts, cmd: cmd, logFile: logFile, done: make(chan struct{})}
	go func() {
		d.waitErr = cmd.Wait()
		d.state = cmd.ProcessState
		close(d.done)
	}()

	if err := d.waitReady(); err != nil {
		d.Kill()
		return nil, fmt.Errorf("%w\n%s", err, d.LogTail(30))
	}
	return d, nil
}

// waitReady polls until the socket file exists and a connect succeeds. A socket file
// left by a killed predecessor exists but refuses connections, so connecting is the test.
func (d *Daemon) waitReady() error {
	deadline := time.Now().Add(readyTimeout)
	for time.Now().Before(deadline) {
		select {
		case <-d.done:
			return fmt.Errorf("daemon exited before it was ready: %s", d.ExitDescription())
		default:
		}
		if _, err := os.Stat(d.Socket); err == nil {
			if c, err := net.DialTimeout("unix", d.Socket, time.Second); err == nil {
				c.Close()
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("daemon not ready: socket %s did not accept connections within %s", d.Socket, readyTimeout)
}

// Pid of the daemon process.
func (d *Daemon) Pid() int { return d.cmd.Process.Pid }

// Done is closed when the process has exited.
func (d *Daemon) Done() <-chan struct{} { return d.done }

// Exited reports whether the process has exited, waiting at most timeout.
func (d *Daemon) Exited(timeout time.Duration) bool {
	select {
	case <-d.done:
		return true
	case <-time.After(timeout):
		return false
	}
}

// KilledBySIGKILL reports whether the (exited) process died from SIGKILL, which is how
// SNAPIMPORT_CRASH_AT and our own kill -9 end it.
func (d *Daemon) KilledBySIGKILL() bool {
	if d.state == nil {
		return false
	}
	ws, ok := d.state.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

// ExitDescription says how the process ended ("running" if it has not).
func (d *Daemon) ExitDescription() string {
	select {
	case <-d.done:
	default:
		return "running"
	}
	if d.state == nil {
		return fmt.Sprintf("wait failed: %v", d.waitErr)
	}
	return d.state.String()
}

// Kill sends SIGKILL (kill -9) and waits for the process to be reaped.
func (d *Daemon) Kill() {
	_ = d.cmd.Process.Signal(syscall.SIGKILL)
	<-d.done
	d.logFile.Close()
}

// Stop sends SIGTERM and expects a clean exit (status 0) within stopTimeout. It is
// idempotent so that a test's deferred cleanup can call it after an explicit Stop.
func (d *Daemon) Stop() error {
	d.stopOnce.Do(func() {
		select {
		case <-d.done:
			d.stopErr = fmt.Errorf("daemon had already exited before SIGTERM: %s", d.ExitDescription())
			d.logFile.Close()
			return
		default:
		}
		_ = d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.done:
			if !d.state.Success() {
				d.stopErr = fmt.Errorf("daemon did not exit cleanly on SIGTERM: %s", d.ExitDescription())
			}
		case <-time.After(stopTimeout):
			_ = d.cmd.Process.Signal(syscall.SIGKILL)
			<-d.done
			d.stopErr = fmt.Errorf("daemon did not exit within %s of SIGTERM; killed it", stopTimeout)
		}
		d.logFile.Close()
	})
	return d.stopErr
}

// Dial connects to the daemon's socket. The dialer ignores the target and always dials
// the socket path: Debian's grpc-go 1.33 has no credentials/insecure and its unix
// target handling differs between versions.
func (d *Daemon) Dial() (*grpc.ClientConn, error) {
	return Dial(d.Socket)
}

// Dial connects to a snapshotter socket without TLS.
func Dial(socket string) (*grpc.ClientConn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	return grpc.DialContext(ctx, "passthrough:///snapimport",
		grpc.WithInsecure(),
		grpc.WithBlock(),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			var dialer net.Dialer
			return dialer.DialContext(ctx, "unix", socket)
		}),
		// Tests send labels up to the 4 KiB limit and a little over; stay well clear of limits.
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(16<<20), grpc.MaxCallSendMsgSize(16<<20)),
	)
}

// LogTail returns the last n lines of the daemon's log file, for failure messages.
func (d *Daemon) LogTail(n int) string {
	return FileTail(d.LogPath, n)
}

// FileTail returns the last n lines of a file, prefixed so they stand out in test output.
func FileTail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(no daemon log: %v)", err)
	}
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	var b strings.Builder
	fmt.Fprintf(&b, "--- last %d lines of daemon log %s ---\n", len(lines), path)
	for _, l := range lines {
		b.WriteString("  | ")
		b.WriteString(l)
		b.WriteByte('\n')
	}
	return b.String()
}

// LogDir returns the directory for daemon logs: SNAPIMPORT_LOG_DIR if set (ctest points
// it into the build tree so logs survive the test's temp dirs), else fallback.
func LogDir(fallback string) string {
	if dir := os.Getenv("SNAPIMPORT_LOG_DIR"); dir != "" {
		return dir
	}
	return fallback
}
