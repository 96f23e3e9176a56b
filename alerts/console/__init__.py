"""The duty console: a web app for duty officers (queue, map, trends), scoped to each user's enterprise or district.

users.py (who may log in and what they see), board.py (the alert state the console shows, fed from alert-events),
app.py (the aiohttp application), service.py (Kafka and InfluxDB wiring), static/ (the single-page app).
"""
