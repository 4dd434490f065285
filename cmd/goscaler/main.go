// Command goscaler is the elastic cluster manager: daemon, CLI, demo and demo node.
package main

import (
	"os"

	"github.com/goscaler/goscaler/internal/cli"
)

func main() {
	os.Exit(cli.Execute(os.Args[1:], os.Stdout, os.Stderr))
}
