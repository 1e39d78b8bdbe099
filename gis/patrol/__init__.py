"""Patrols (巡查), visits (走访) and problems (挂牌销号): areas, tours, logs and reminders."""
