// Command ctl runs Drover scripts and inspects their runs; see docs/cli.md.
package main

import (
	"os"

	"github.com/droverhq/drover/cli"
	_ "github.com/droverhq/drover/starlark/builtins/all" // the builtins scripts call
)

func main() { os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) }
