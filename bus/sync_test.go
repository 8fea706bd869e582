package bus

import (
	"testing"
	"time"
)

func TestParseSync(t *testing.T) {
	for _, tt := range []struct {
		in      string
		want    SyncPolicy
		wantErr bool
	}{
		{in: "always", want: SyncAlways},
		{in: "interval", want: SyncPolicy{Interval: DefaultSyncInterval}},
		{in: "interval:1s", want: SyncPolicy{Interval: time.Second}},
		{in: "interval:0s", wantErr: true},
		{in: "interval:-1s", wantErr: true},
		{in: "interval:soon", wantErr: true},
		{in: "Always", wantErr: true},
		{in: "", wantErr: true},
	} {
		got, err := ParseSync(tt.in)
		if (err != nil) != tt.wantErr || !tt.wantErr && got != tt.want {
			t.Errorf("ParseSync(%q) = %v, %v", tt.in, got, err)
		}
		if err == nil {
			if again, _ := ParseSync(got.String()); again != got {
				t.Errorf("%q: String %q does not parse back", tt.in, got.String())
			}
		}
	}
	if (SyncPolicy{}).String() != "interval:2m0s" {
		t.Errorf("zero value: %s", SyncPolicy{}.String())
	}
}
