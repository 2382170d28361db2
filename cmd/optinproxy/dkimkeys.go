package main

import (
	"fmt"

	"optinproxy/config"
	"optinproxy/dkim"
)

// dkimKeys reads the dkim entries' key files while the configuration
// loads, so that a key that does not load is reported at its line with
// the configuration's other problems. Give its check to config.Load; the
// keys and the warnings are there once Load returns.
type dkimKeys struct {
	keys     []dkim.Key
	warnings []string
}

// check is a config.Check.
func (d *dkimKeys) check(c *config.Config, invalid func(key, msg string)) {
	for i, e := range c.DKIM {
		if e.KeyFile == "" {
			continue // config reports it
		}
		name := fmt.Sprintf("dkim[%d]", i)
		signer, err := dkim.LoadKey(e.KeyFile)
		if err != nil {
			invalid(name+".key_file", err.Error())
			continue
		}
		if bits := dkim.RSABits(signer); bits > 0 && bits < dkim.RecommendedRSABits {
			d.warnings = append(d.warnings, fmt.Sprintf("%s: the RSA key of %s._domainkey.%s has %d bits; receivers may take keys under %d bits for weak",
				name, e.Selector, e.Domain, bits, dkim.RecommendedRSABits))
		}
		d.keys = append(d.keys, dkim.Key{Domain: e.Domain, Selector: e.Selector, Signer: signer})
	}
}
