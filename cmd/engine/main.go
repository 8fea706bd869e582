// Command engine runs one Drover node: embedded NATS (or an external one),
// coordinator, step worker and the HTTP JSON API. Its command line is
// cli.EngineMain; docs/operations.md is the user's reference.
//
//	engine --name n1 --data-dir /var/lib/drover --http 127.0.0.1:8080
package main

import (
	"os"

	"github.com/droverhq/drover/cli"
	_ "github.com/droverhq/drover/starlark/builtins/all" // the builtins scripts call
)

func main() { os.Exit(cli.EngineMain(os.Args[1:], os.Stdout, os.Stderr)) }
