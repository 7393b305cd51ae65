"""DataKeeper: a leader-replica, in-memory key-value store coordinated by nookeeper.

Election, membership and cluster status are nookeeper's; the data never is.
docs/datakeeper.md walks through it. The modules, and the recipe each uses:

    store.py         the key-value map and its position (epoch, seq)
    layout.py        the znodes of one cluster, under its root
    leadership.py    Election: which node leads; the leader znode names it
    membership.py    Party: the live-node directory, one ephemeral znode per node
    cluster_view.py  TreeWatch on the directory, DataWatch on the leader znode
    leader.py        one leadership term: the write path and its fence
    replica_link.py  the leader's stream to one replica (full copy, then entries)
    replica.py       a replica's side of that stream, fenced by term
    peer_client.py   JSON over HTTP between nodes
    node.py          one DataKeeper process, wiring the above together
    api.py           its HTTP side: the API, the page (static/) and its event stream
    feed.py          what wakes the page's event streams
    main.py          bin/datakeeper; local_cluster.py, its `local` command
"""
