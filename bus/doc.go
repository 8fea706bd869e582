// Package bus is Drover's only door to NATS: it starts an embedded nats-server
// with JetStream (or connects to an external NATS), defines every stream, bucket
// and subject in one place (subjects.go), creates them idempotently, and offers
// the few operations the rest of Drover needs: write-once journal appends and
// reads, step dispatch and consumption, key/value buckets, and core messages.
//
// Nothing outside this package imports nats.go or nats-server; other packages
// speak in terms of Msg, Header and KV.
package bus
