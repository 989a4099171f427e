// nspull pulls and unpacks an image through containerd in any namespace, the way CRI does: the
// layer descriptors get the CRI snapshot labels (snapshotters.AppendInfoHandlerWrapper), so a
// remote snapshotter such as snapimport sees the same Prepare labels as from a CRI PullImage.
// CRI itself always uses namespace k8s.io; this tool is how the tests pull into another one.
//
//	nspull -address SOCK -namespace NS -snapshotter NAME [-plain-http] REF
//
// Prints "<name> <digest>" of the pulled image.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/namespaces"
	"github.com/containerd/containerd/pkg/snapshotters"
	"github.com/containerd/containerd/remotes/docker"
)

func main() {
	address := flag.String("address", "", "containerd socket")
	ns := flag.String("namespace", "default", "containerd namespace")
	snapshotter := flag.String("snapshotter", "snapimport", "snapshotter to unpack into")
	plainHTTP := flag.Bool("plain-http", false, "talk to the registry over plain HTTP")
	timeout := flag.Duration("timeout", 5*time.Minute, "give up after this long")
	flag.Parse()
	if *address == "" || flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: nspull -address SOCK [-namespace NS] [-snapshotter NAME] [-plain-http] REF")
		os.Exit(2)
	}
	if err := pull(*address, *ns, *snapshotter, *plainHTTP, *timeout, flag.Arg(0)); err != nil {
		fmt.Fprintln(os.Stderr, "nspull:", err)
		os.Exit(1)
	}
}

func pull(address, ns, snapshotter string, plainHTTP bool, timeout time.Duration, ref string) error {
	client, err := containerd.New(address, containerd.WithDefaultNamespace(ns))
	if err != nil {
		return err
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), ns), timeout)
	defer cancel()
	img, err := client.Pull(ctx, ref,
		containerd.WithPullUnpack,
		containerd.WithPullSnapshotter(snapshotter),
		containerd.WithResolver(docker.NewResolver(docker.ResolverOptions{PlainHTTP: plainHTTP})),
		containerd.WithImageHandlerWrapper(snapshotters.AppendInfoHandlerWrapper(ref)))
	if err != nil {
		return err
	}
	fmt.Println(img.Name(), img.Target().Digest)
	return nil
}
