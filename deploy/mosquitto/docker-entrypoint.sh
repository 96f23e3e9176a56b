#!/bin/sh
# Builds the password file from HW_MQTT_PASSWORD_<USER> variables (users as in the ACL), then runs Mosquitto
# with the shared settings in mosquitto.conf. Secrets come from the environment, never from the image.
set -eu
conf=/mosquitto/config/hazardwatch.conf
passwd=/mosquitto/config/passwd
: > "$passwd"
chmod 600 "$passwd"
for user in $(awk '$1 == "user" {print $2}' /hw/acl); do
  var="HW_MQTT_PASSWORD_$(echo "$user" | tr 'a-z-' 'A-Z_')"
  pw=$(printenv "$var" || true)
  if [ -z "$pw" ]; then echo "mosquitto: $var is not set; add it to deploy/compose/.env" >&2; exit 1; fi
  mosquitto_passwd -b "$passwd" "$user" "$pw"
done
chown mosquitto:mosquitto "$passwd" 2>/dev/null || true
{ cat /hw/mosquitto.conf
  echo "listener 1883 0.0.0.0"
  echo "password_file $passwd"
  echo "acl_file /hw/acl"
  echo "persistence_location /mosquitto/data/"
  echo "log_dest stdout"
} > "$conf"
exec mosquitto -c "$conf"
