package cli

import "testing"

func TestEnvoyVersion(t *testing.T) {
	for _, tc := range []struct {
		out          string
		major, minor int
		ok           bool
	}{
		{"\nenvoy  version: 6b9db09c69965d5bfb37bdd29693f8b7f9e9e9ec/1.31.2/Clean/RELEASE/BoringSSL\n", 1, 31, true},
		{"envoy  version: 0123/1.28.0-dev/Modified/DEBUG/BoringSSL-FIPS", 1, 28, true},
		{"envoy: command not found", 0, 0, false},
	} {
		major, minor, err := envoyVersion(tc.out)
		if (err == nil) != tc.ok || major != tc.major || minor != tc.minor {
			t.Errorf("envoyVersion(%q) = %d.%d, %v", tc.out, major, minor, err)
		}
	}
}
