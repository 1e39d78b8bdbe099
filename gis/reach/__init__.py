"""Walking reach: network distance from every building to the nearest facility of each kind."""
