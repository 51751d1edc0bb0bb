"""Media types shared by every stage, the encoded-output bus and the clock."""
