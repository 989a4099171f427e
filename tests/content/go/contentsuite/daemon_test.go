// Starts a fresh snapimport daemon on a fresh root for each test case and dials its socket the way
// containerd's proxy_plugins do (insecure, unix socket).
package contentsuite

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	contentapi "github.com/containerd/containerd/api/services/content/v1"
	"google.golang.org/grpc"
)

// daemon is one running `snapimport serve` process.
type daemon struct {
	root    string
	address string
	cmd     *exec.Cmd
	conn    *grpc.ClientConn
	client  contentapi.ContentClient
	logPath string
	exited  chan error // receives once the process has been reaped
	pid     int
	env     []string // extra environment, e.g. SNAPIMPORT_CRASH_AT=...
}

func snapimportBin(t testing.TB) string {
	bin := os.Getenv("SNAPIMPORT_BIN")
	if bin == "" {
		t.Fatal("SNAPIMPORT_BIN must name the snapimport executable")
	}
	return bin
}

// startDaemon runs the daemon with its state under dir/state and its socket at dir/snapimport.sock.
func startDaemon(t testing.TB, dir string, env ...string) (*daemon, error) {
	d := &daemon{
		env:     env,
		root:    filepath.Join(dir, "state"),
		address: filepath.Join(dir, "snapimport.sock"),
		logPath: filepath.Join(dir, "daemon.log"),
	}
	if err := d.start(snapimportBin(t)); err != nil {
		return nil, err
	}
	return d, nil
}

func (d *daemon) start(bin string) error {
	logFile, err := os.OpenFile(d.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0600)
	if err != nil {
		return fmt.Errorf("open daemon log %s: %w", d.logPath, err)
	}
	defer logFile.Close()
	_ = os.Remove(d.address)
	d.cmd = exec.Command(bin, "serve", "--root", d.root, "--address", d.address)
	d.cmd.Env = append(os.Environ(), d.env...)
	d.cmd.Stdout = logFile
	d.cmd.Stderr = logFile
	if err := d.cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", bin, err)
	}
	exited := make(chan error, 1)
	go func(cmd *exec.Cmd) { exited <- cmd.Wait() }(d.cmd)
	deadline := time.Now().Add(20 * time.Second)
	for {
		if c, err := net.Dial("unix", d.address); err == nil {
			c.Close()
			break
		}
		select {
		case err := <-exited:
			log, _ := os.ReadFile(d.logPath)
			return fmt.Errorf("daemon exited before listening (%v); log:\n%s", err, log)
		default:
		}
		if time.Now().After(deadline) {
			d.kill()
			return fmt.Errorf("daemon did not listen on %s within 20s", d.address)
		}
		time.Sleep(20 * time.Millisecond)
	}
	d.pid = d.cmd.Process.Pid
	d.exited = exited
	conn, err := grpc.Dial(d.address,
		grpc.WithInsecure(),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			var dialer net.Dialer
			return dialer.DialContext(ctx, "unix", addr)
		}),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(16<<20), grpc.MaxCallSendMsgSize(16<<20)))
	if err != nil {
		d.kill()
		return fmt.Errorf("dial %s: %w", d.address, err)
	}
	d.conn = conn
	d.client = contentapi.NewContentClient(conn)
	return nil
}

// stop shuts the daemon down gracefully (SIGTERM) and waits for it.
func (d *daemon) stop() error {
	if d.conn != nil {
		d.conn.Close()
		d.conn = nil
	}
	if d.cmd == nil {
		return nil
	}
	d.signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(15 * time.Second):
		d.kill()
		return fmt.Errorf("daemon did not stop within 15s of SIGTERM")
	}
	d.cmd = nil
	return nil
}

// kill is kill -9: no chance to clean up, as after a crash.
func (d *daemon) kill() {
	if d.conn != nil {
		d.conn.Close()
		d.conn = nil
	}
	if d.cmd == nil {
		return
	}
	d.signal(syscall.SIGKILL)
	if d.exited != nil {
		<-d.exited
	}
	d.cmd = nil
}

// signal sends sig to the daemon only. A pid <= 0 would address a process group or every
// process on the machine, so it is refused outright.
func (d *daemon) signal(sig syscall.Signal) {
	if d.pid <= 0 {
		panic(fmt.Sprintf("refusing to signal pid %d", d.pid))
	}
	_ = syscall.Kill(d.pid, sig)
}
