"""Embedded services: Apache Kafka (KRaft) and Triton Inference Server."""
