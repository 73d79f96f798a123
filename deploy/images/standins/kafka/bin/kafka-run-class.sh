#!/bin/bash
# java -cp '/opt/kafka/libs/*' CLASS ARGS, as the Kafka distribution's script of the same name.
exec java ${KAFKA_HEAP_OPTS:--Xmx256m} ${KAFKA_OPTS:-} -Dlog4j2.configurationFile=/opt/kafka/config/tools-log4j2.properties \
    -cp '/opt/kafka/libs/*' "$@"
