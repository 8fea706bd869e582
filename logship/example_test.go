package logship_test

import (
	"context"
	"os"
	"time"

	"github.com/rs/zerolog"

	"github.com/droverhq/drover/logship"
)

// A node logs to stderr and ships the same lines; the shipper's own
// problems go to stderr only.
func ExampleNew() {
	cfg := logship.Config{
		Logstash: logship.LogstashConfig{Address: "127.0.0.1:5000"},
		Elasticsearch: logship.ElasticsearchConfig{
			Addresses: []string{"http://127.0.0.1:9200"},
			Username:  "elastic",
			Password:  os.Getenv("ES_PASSWORD"),
		},
	}
	shipper, err := logship.New(cfg, logship.Options{Logger: zerolog.New(os.Stderr)})
	if err != nil {
		panic(err) // a *logship.ConfigError names the setting
	}
	log := zerolog.New(zerolog.MultiLevelWriter(os.Stderr, shipper)).With().Timestamp().Str("node", "n1").Logger()
	log.Info().Str("run", "r1").Msg("run started")

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	shipper.Close(ctx) // ships what it can in 5 s
}
