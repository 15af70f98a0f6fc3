package etcd

import (
	"context"
	"strconv"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// compactRevKey is the key through which every server on one etcd agrees
// who compacts, each interval. It is kube-apiserver's key, used the same
// way, so Ballast servers and kube-apiserver sharing an etcd cooperate.
const compactRevKey = "compact_rev_key"

// compactLoop compacts etcd every interval to the revision seen one
// interval earlier, so a list or watch may lag by up to one interval.
// Of several servers on one etcd only one compacts each interval: the one
// whose transaction bumps compactRevKey's version first.
func (s *Store) compactLoop(ctx context.Context, interval time.Duration) {
	var version, rev int64
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var err error
		version, rev, err = s.compactOnce(ctx, version, rev)
		if err != nil && ctx.Err() == nil {
			s.log.Warn("etcd compaction failed; trying again next interval", "interval", interval, "err", err)
		}
	}
}

// compactOnce takes this interval's turn when compactRevKey is still at
// version (nobody compacted since this server last looked), and then
// compacts to rev, the revision seen one interval ago. It returns the
// version and revision to use next interval.
func (s *Store) compactOnce(ctx context.Context, version, rev int64) (int64, int64, error) {
	resp, err := s.client.Txn(ctx).
		If(clientv3.Compare(clientv3.Version(compactRevKey), "=", version)).
		Then(clientv3.OpPut(compactRevKey, strconv.FormatInt(rev, 10))).
		Else(clientv3.OpGet(compactRevKey)).
		Commit()
	if err != nil {
		return version, rev, mapErr(ctx, "compaction turn", compactRevKey, err)
	}
	now := resp.Header.Revision
	if !resp.Succeeded {
		// Another server took this turn: follow its count.
		return resp.Responses[0].GetResponseRange().Kvs[0].Version, now, nil
	}
	if rev > 0 {
		if err := s.Compact(ctx, rev); err != nil {
			return version + 1, now, err
		}
		s.log.Debug("etcd compacted", "revision", rev)
	}
	return version + 1, now, nil
}
