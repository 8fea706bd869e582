package bus

// OpenCluster is openCluster for the external test package.
var OpenCluster = openCluster

// WithoutGroupSync returns opts whose always policy is left to the embedded
// server (nats-server's SyncAlways: one fsync per message), as before the
// bus grouped syncs: the comparison in BenchmarkAppend.
func WithoutGroupSync(opts Options) Options {
	opts.noGroupSync = true
	return opts
}
