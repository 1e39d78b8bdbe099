"""Community ledgers (台账): residents, organisations, special groups, key persons, backbone."""
