// Package all gathers every builtin module that ships with Drover. Importing
// it registers them all into builtins.Default, through each module's init:
//
//	import _ "github.com/droverhq/drover/starlark/builtins/all"
//
// Register fills a registry of one's own instead, for an isolated set of
// builtins (tests do this). A new module is one more import and one more
// entry in modules.
package all

import (
	"github.com/droverhq/drover/starlark/builtins"
	"github.com/droverhq/drover/starlark/builtins/amqp"
	"github.com/droverhq/drover/starlark/builtins/cache"
	"github.com/droverhq/drover/starlark/builtins/consul"
	"github.com/droverhq/drover/starlark/builtins/emit"
	"github.com/droverhq/drover/starlark/builtins/http"
	"github.com/droverhq/drover/starlark/builtins/json"
	"github.com/droverhq/drover/starlark/builtins/kv"
	"github.com/droverhq/drover/starlark/builtins/log"
	"github.com/droverhq/drover/starlark/builtins/metrics"
	"github.com/droverhq/drover/starlark/builtins/pagerduty"
	"github.com/droverhq/drover/starlark/builtins/rand"
	"github.com/droverhq/drover/starlark/builtins/redis"
	"github.com/droverhq/drover/starlark/builtins/slack"
	"github.com/droverhq/drover/starlark/builtins/sql"
	"github.com/droverhq/drover/starlark/builtins/tag"
	"github.com/droverhq/drover/starlark/builtins/time"
)

// modules are the Register functions of the modules of Script API v0.
var modules = []func(*builtins.Registry){
	amqp.Register,
	cache.Register,
	consul.Register,
	emit.Register,
	http.Register,
	json.Register,
	kv.Register,
	log.Register,
	metrics.Register,
	pagerduty.Register,
	rand.Register,
	redis.Register,
	slack.Register,
	sql.Register,
	tag.Register,
	time.Register,
}

// Register adds every builtin that ships with Drover to r. Like
// Registry.MustRegister it panics if one of the names is already taken.
func Register(r *builtins.Registry) {
	for _, register := range modules {
		register(r)
	}
}
