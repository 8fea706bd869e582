// Package limits backs the cluster- and group-scoped custom resources of
// package meter: a shared rate limit or pool is one record in the limits
// bucket (bus.LimitsBucket), changed by compare-and-set, so that every node
// of its scope draws from the same bucket or pool. A take is one round trip
// to the bucket's stream leader when nobody else changed the record since
// this node last saw it, two otherwise. Pool units are held per node and
// tagged with the holder's incarnation: units of a node that stopped
// heartbeating are freed after a grace period, a restarted node's old units
// are void. Takes fail closed when the record cannot be reached.
package limits
