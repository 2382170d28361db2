package config

import "testing"

// TestController: the controller named in the record of processing comes
// from the file and the environment like every key; an unknown key under
// it is an error.
func TestController(t *testing.T) {
	cfg, errs := loadYAML(t, "controller:\n  name: Bakkerij Jansen B.V.\n  contact: privacy@bakkerij.example\n",
		"OPTINPROXY_CONTROLLER_DPO=dpo@bakkerij.example")
	if errs != nil {
		t.Fatal(errs)
	}
	want := Controller{Name: "Bakkerij Jansen B.V.", Contact: "privacy@bakkerij.example", DPO: "dpo@bakkerij.example"}
	if cfg.Controller != want {
		t.Errorf("controller = %+v, want %+v", cfg.Controller, want)
	}
	if _, errs := loadYAML(t, "controller:\n  naam: x\n"); errs == nil {
		t.Error("controller.naam was accepted")
	}
}
