using System;

namespace WriteBehind.Engine.Store
{
    /// <summary>A store operation failed. The inner exception is the provider's original error.
    /// Not worth retrying as is (bad data, corrupt file, constraint violation...) unless it is a
    /// <see cref="StoreUnavailableException"/>.</summary>
    public class StoreException : Exception
    {
        /// <summary>A failed store operation; <paramref name="inner"/> is the provider's error.</summary>
        public StoreException(string message, Exception inner)
            : base(message, inner)
        {
        }
    }

    /// <summary>The store could not be reached or was busy (locked, cannot open, I/O error, disk full...).
    /// Transient: the same operation may succeed later, so a flush should keep its batch and retry.</summary>
    public sealed class StoreUnavailableException : StoreException
    {
        /// <summary>A store that could not be reached or was busy; <paramref name="inner"/> is the provider's error.</summary>
        public StoreUnavailableException(string message, Exception inner)
            : base(message, inner)
        {
        }
    }
}
