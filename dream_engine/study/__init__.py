"""What does the network see? Sweeps over one parameter, layer sheets and image kinds,
each dreamed into one labelled grid."""
