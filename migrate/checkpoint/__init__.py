"""Convert TF1 `tf.train.Saver` checkpoints to the migrated Keras models (issue 8)."""
