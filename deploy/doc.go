// Package deploy keeps script versions and which one is live under each name.
//
// Versions are stored by content hash (Store: "sha256.<hash>" in the scripts
// bucket, shared with ad-hoc runs, so that every run's exact version can be
// loaded for recovery, export and replay). A name's pointer "live.<name>"
// says which version new runs use, and moves by compare-and-set, for the
// whole bundle at once. Every deploy and rollback then writes
// "hist.<name>.<version>", create-only, so the history is append-only.
//
// A Deployer checks a version before it goes live (it compiles, lint finds
// nothing, and, when asked, the name's recent runs still replay against it),
// and keeps every name's live version compiled by watching the pointers
// (Watch): a deploy through any node reaches new runs on every node within
// milliseconds, while a run keeps the version it started with to its end.
package deploy
