#!/usr/bin/env bash
# Writes the Strimzi 0.47.0 CustomResourceDefinitions for Kafka, KafkaNodePool and KafkaTopic into
# ${HW_CACHE:-~/.cache/hazardwatch}/strimzi-crds-0.47.0/ once (Maven Central + Strimzi's own CRD generator, with
# the arguments of Strimzi's api/pom.xml) and prints that directory. Needs java and mvn (install.sh has them).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
version=0.47.0
dir="${HW_CACHE:-$HOME/.cache/hazardwatch}/strimzi-crds-$version"
if [ ! -f "$dir/kafkatopic.yaml" ]; then
  for tool in java mvn; do
    command -v "$tool" >/dev/null || { echo "strimzi-crds.sh: $tool is needed (apt-get install openjdk-17-jre-headless maven)" >&2; exit 3; }
  done
  echo "strimzi-crds.sh: generating the Strimzi $version CRDs into $dir (once)" >&2
  tmp="$dir.partial"
  rm -rf "$tmp" && mkdir -p "$tmp/lib"
  mvn -B -q -f "$here/strimzi-crds/pom.xml" dependency:copy-dependencies -DincludeScope=runtime \
    -DoutputDirectory="$tmp/lib" >&2
  gen=(java -cp "$tmp/lib/*" io.strimzi.crdgenerator.CrdGenerator --label app:strimzi
       --label strimzi.io/crd-install:true --target-kube 1.16+ --crd-api-version v1 --storage-version v1beta2 --yaml)
  "${gen[@]}" --api-versions v1beta2 \
    io.strimzi.api.kafka.model.kafka.Kafka="$tmp/kafka.yaml" \
    io.strimzi.api.kafka.model.nodepool.KafkaNodePool="$tmp/kafkanodepool.yaml" 2>/dev/null
  "${gen[@]}" --api-versions v1alpha1,v1beta1,v1beta2 \
    io.strimzi.api.kafka.model.topic.KafkaTopic="$tmp/kafkatopic.yaml" 2>/dev/null
  rm -rf "$tmp/lib" "$dir" && mv "$tmp" "$dir"
fi
echo "$dir"
