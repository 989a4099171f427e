// containerd's content store conformance suite, run against the daemon through containerd's own
// proxy client: exactly the path containerd takes when snapimport is a content proxy plugin.
package contentsuite

import (
	"context"
	"testing"

	"github.com/containerd/containerd/content"
	"github.com/containerd/containerd/content/proxy"
	"github.com/containerd/containerd/content/testsuite"
)

func TestContentSuite(t *testing.T) {
	testsuite.ContentSuite(t, "snapimport", func(ctx context.Context, root string) (context.Context, content.Store, func() error, error) {
		d, err := startDaemon(t, root)
		if err != nil {
			return nil, nil, nil, err
		}
		return ctx, proxy.NewContentStore(d.client), d.stop, nil
	})
}
