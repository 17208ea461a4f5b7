"""The wafer/sglang:mi355x image: base-image records, the build plan and the in-image setup step."""
