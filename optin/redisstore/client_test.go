package redisstore

import (
	"testing"

	"github.com/redis/go-redis/v9"
)

func TestNewClient(t *testing.T) {
	tests := []struct {
		name             string
		url, master      string
		sentinels, nodes []string
		wantErr          bool
		want             string // the concrete type
	}{
		// One node by URL; rediss:// turns TLS on.
		{name: "url", url: "redis://:secret@127.0.0.1:6380/2", want: "client"},
		{name: "tls", url: "rediss://127.0.0.1:6380/0", want: "client"},
		// Sentinel and Cluster, with the URL as the source of credentials.
		{name: "sentinel", master: "mymaster", sentinels: []string{"127.0.0.1:26379"}, want: "client"},
		{name: "cluster", url: "redis://:secret@ignored:1", nodes: []string{"127.0.0.1:7000", "127.0.0.1:7001"}, want: "cluster"},
		// Mistakes.
		{name: "nothing", wantErr: true},
		{name: "bad url", url: "http://example.com", wantErr: true},
		{name: "master without sentinels", master: "m", wantErr: true},
		{name: "sentinels without master", sentinels: []string{"127.0.0.1:26379"}, wantErr: true},
		{name: "sentinel and cluster", master: "m", sentinels: []string{"a:1"}, nodes: []string{"b:2"}, wantErr: true},
		// A Cluster has database 0 only; another would be dropped unseen.
		{name: "cluster with a database", url: "redis://:secret@ignored:1/3", nodes: []string{"127.0.0.1:7000"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := NewClient(tt.url, tt.master, tt.sentinels, tt.nodes)
			if tt.wantErr {
				if err == nil {
					c.Close()
					t.Fatal("no error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			switch c := c.(type) {
			case *redis.Client:
				if tt.want != "client" {
					t.Errorf("a single-node client, want %s", tt.want)
				}
				if tt.name == "tls" && c.Options().TLSConfig == nil {
					t.Error("rediss:// without TLS")
				}
				if tt.name == "url" && (c.Options().Password != "secret" || c.Options().DB != 2) {
					t.Errorf("options %+v", c.Options())
				}
			case *redis.ClusterClient:
				if tt.want != "cluster" || c.Options().Password != "secret" {
					t.Errorf("a cluster client, want %s; password %q", tt.want, c.Options().Password)
				}
			default:
				t.Errorf("client of type %T", c)
			}
		})
	}
}
