package api

import (
	"encoding/json"
	"errors"
	"testing"
	"time"
)

func TestDurationJSON(t *testing.T) {
	b, err := json.Marshal(HealthCheckDefinition{HTTP: "http://x", Interval: Duration(10 * time.Second)})
	if err != nil || string(b) != `{"HTTP":"http://x","Interval":"10s"}` {
		t.Errorf("marshal = %s, %v", b, err)
	}
	var d HealthCheckDefinition
	if err := json.Unmarshal([]byte(`{"Interval":"1m30s","Timeout":5000000000}`), &d); err != nil ||
		d.Interval != Duration(90*time.Second) || d.Timeout != Duration(5*time.Second) {
		t.Errorf("unmarshal = %+v, %v", d, err)
	}
	var c HealthCheck
	err = json.Unmarshal([]byte(`{"Definition":{"Timeout":"soon"}}`), &c)
	var te *json.UnmarshalTypeError
	if !errors.As(err, &te) || te.Field != "Definition.Timeout" {
		t.Errorf("bad duration: %v, want a type error naming Definition.Timeout", err)
	}
}
