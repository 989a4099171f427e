// leasedpull pulls (and unpacks) an image through containerd inside a lease it names and keeps,
// so that a failed attempt leaves its ingests to a later attempt instead of to containerd's GC.
// ctr cannot do that: it deletes its lease when a pull fails, and GC then forgets the ingests.
//
//	leasedpull -address SOCK -namespace NS -lease ID -snapshotter NAME [-plain-http] REF
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/errdefs"
	"github.com/containerd/containerd/leases"
	"github.com/containerd/containerd/namespaces"
	"github.com/containerd/containerd/remotes/docker"
)

func main() {
	address := flag.String("address", "", "containerd socket")
	ns := flag.String("namespace", "default", "containerd namespace")
	leaseID := flag.String("lease", "", "lease to pull under (created if missing, kept afterwards)")
	snapshotter := flag.String("snapshotter", "", "snapshotter to unpack into")
	plainHTTP := flag.Bool("plain-http", false, "talk to the registry over plain HTTP")
	flag.Parse()
	if *address == "" || *leaseID == "" || flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: leasedpull -address SOCK -lease ID [-namespace NS] [-snapshotter NAME] [-plain-http] REF")
		os.Exit(2)
	}
	if err := pull(*address, *ns, *leaseID, *snapshotter, *plainHTTP, flag.Arg(0)); err != nil {
		fmt.Fprintln(os.Stderr, "leasedpull:", err)
		os.Exit(1)
	}
}

func pull(address, ns, leaseID, snapshotter string, plainHTTP bool, ref string) error {
	client, err := containerd.New(address, containerd.WithDefaultNamespace(ns))
	if err != nil {
		return err
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), ns), 10*time.Minute)
	defer cancel()
	if _, err := client.LeasesService().Create(ctx, leases.WithID(leaseID), leases.WithExpiration(time.Hour)); err != nil && !errdefs.IsAlreadyExists(err) {
		return fmt.Errorf("create lease %s: %w", leaseID, err)
	}
	ctx = leases.WithLease(ctx, leaseID)
	opts := []containerd.RemoteOpt{
		containerd.WithPullUnpack,
		containerd.WithResolver(docker.NewResolver(docker.ResolverOptions{PlainHTTP: plainHTTP})),
	}
	if snapshotter != "" {
		opts = append(opts, containerd.WithPullSnapshotter(snapshotter))
	}
	img, err := client.Pull(ctx, ref, opts...)
	if err != nil {
		return err
	}
	fmt.Println(img.Name(), img.Target().Digest)
	return nil
}
