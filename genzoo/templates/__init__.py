"""Files written by ``genzoo plugin new``: a ready-to-install model plugin."""
