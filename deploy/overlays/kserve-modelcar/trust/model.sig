{"placeholder": "replace this file with the bundle `modelgate push ... --signature model.sig` wrote; until then nothing verifies"}
